"""Keras-style layers. Images are NHWC (channels_last); weights use Keras's layouts."""

from .activation_layers import LeakyReLU, ReLU, Softmax
from .base import LAYER_REGISTRY, Layer, Variable, register
from .conv import Conv2D
from .conv1d import Conv1D, Conv1DTranspose
from .core import Activation, Dense, Dropout, Flatten, Input, InputLayer, Reshape
from .embedding import Embedding
from .merge import (
    Add,
    Average,
    Concatenate,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
    add,
    average,
    concatenate,
    maximum,
    minimum,
    multiply,
    subtract,
)
from .normalization import BatchNormalization, LayerNormalization
from .pooling import AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D
from .pooling1d import (
    AveragePooling1D,
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    MaxPooling1D,
    UpSampling1D,
)
from .recurrent import GRU, LSTM, SimpleRNN
from .sequence import RepeatVector, SpatialDropout1D
from .wrappers import Bidirectional, TimeDistributed

__all__ = [
    "LAYER_REGISTRY",
    "Activation",
    "Add",
    "Average",
    "Concatenate",
    "Maximum",
    "Minimum",
    "Multiply",
    "Subtract",
    "add",
    "average",
    "concatenate",
    "maximum",
    "minimum",
    "multiply",
    "subtract",
    "AveragePooling1D",
    "AveragePooling2D",
    "BatchNormalization",
    "Bidirectional",
    "Conv1D",
    "Conv1DTranspose",
    "Conv2D",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GRU",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "Input",
    "InputLayer",
    "LSTM",
    "Layer",
    "LayerNormalization",
    "LeakyReLU",
    "MaxPooling1D",
    "MaxPooling2D",
    "ReLU",
    "RepeatVector",
    "Reshape",
    "SimpleRNN",
    "Softmax",
    "SpatialDropout1D",
    "TimeDistributed",
    "UpSampling1D",
    "Variable",
    "register",
]

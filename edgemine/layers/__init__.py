"""Keras-style layers. Images are NHWC (channels_last); weights use Keras's layouts."""

from .activation_layers import LeakyReLU, ReLU, Softmax
from .base import LAYER_REGISTRY, Layer, Variable, register
from .conv import Conv2D
from .core import Activation, Dense, Dropout, Flatten, Input, InputLayer, Reshape
from .embedding import Embedding
from .normalization import BatchNormalization, LayerNormalization
from .pooling import AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D
from .recurrent import GRU, LSTM, SimpleRNN
from .sequence import RepeatVector, SpatialDropout1D
from .wrappers import Bidirectional, TimeDistributed

__all__ = [
    "LAYER_REGISTRY",
    "Activation",
    "AveragePooling2D",
    "BatchNormalization",
    "Bidirectional",
    "Conv2D",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GRU",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "Input",
    "InputLayer",
    "LSTM",
    "Layer",
    "LayerNormalization",
    "LeakyReLU",
    "MaxPooling2D",
    "ReLU",
    "RepeatVector",
    "Reshape",
    "SimpleRNN",
    "Softmax",
    "SpatialDropout1D",
    "TimeDistributed",
    "Variable",
    "register",
]

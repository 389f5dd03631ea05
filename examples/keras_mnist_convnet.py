"""keras.io's "Simple MNIST convnet" (François Chollet), run on edgemine.

Only the import line differs from the published Keras 3 program (`import keras` ->
`import edgemine as keras`); the data is the 5,000-image MNIST subset shipped inside edgemine,
which `keras.datasets.mnist.load_data()` returns here. Prints the test accuracy and the wall
time of fit() as the last two lines.

    python examples/keras_mnist_convnet.py       # the program's 15 epochs
    python examples/keras_mnist_convnet.py 1     # one epoch (what CI runs)
"""
import sys
import time

import numpy as np

import edgemine as keras
from edgemine import layers

# Model / data parameters
num_classes = 10
input_shape = (28, 28, 1)

# Load the data and split it between train and test sets
(x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()

# Scale images to the [0, 1] range
x_train = x_train.astype("float32") / 255
x_test = x_test.astype("float32") / 255
# Make sure images have shape (28, 28, 1)
x_train = np.expand_dims(x_train, -1)
x_test = np.expand_dims(x_test, -1)
print("x_train shape:", x_train.shape)
print(x_train.shape[0], "train samples")
print(x_test.shape[0], "test samples")

# convert class vectors to binary class matrices
y_train = keras.utils.to_categorical(y_train, num_classes)
y_test = keras.utils.to_categorical(y_test, num_classes)

model = keras.Sequential(
    [
        keras.Input(shape=input_shape),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ]
)

model.summary()

batch_size = 128
epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 15

model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])

t0 = time.perf_counter()
model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, validation_split=0.1)
fit_seconds = time.perf_counter() - t0

score = model.evaluate(x_test, y_test, verbose=0)
print("Test loss:", score[0])
print("Test accuracy:", score[1])
print(f"Accuracy: {score[1] * 100:.2f}")
print(f"fit seconds: {fit_seconds:.1f}")

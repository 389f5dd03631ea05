"""keras.io's "Timeseries classification from scratch" (hfawaz), run on edgemine.

The fully convolutional network of the published Keras 3 program (three Conv1D + BatchNorm +
ReLU blocks, GlobalAveragePooling1D, a softmax), its callbacks (ModelCheckpoint of the best
model, ReduceLROnPlateau, EarlyStopping), ``validation_split`` and the reload of the best model.
What differs: the import lines, no plots, and the data: FordA needs a download, so the BasicMotions
sensor set shipped inside edgemine stands in (4 classes, 6 channels, 100 steps; its own
train/test split). Prints the test accuracy and the wall time of fit() as the last two lines.

    python examples/keras_timeseries_classification.py        # 100 epochs (the program: 500)
"""

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import edgemine as keras

np.random.seed(0)

# ---- data: BasicMotions instead of FordA (the only changed block besides imports) ----
(x_train, y_train), (x_test, y_test) = keras.datasets.basicmotions.load_data()
# ---------------------------------------------------------------------------------------
num_classes = len(np.unique(y_train))

# Shuffle the training set: validation_split takes its last rows.
idx = np.random.permutation(len(x_train))
x_train = x_train[idx]
y_train = y_train[idx]


def make_model(input_shape):
    input_layer = keras.layers.Input(input_shape)

    conv1 = keras.layers.Conv1D(filters=64, kernel_size=3, padding="same")(input_layer)
    conv1 = keras.layers.BatchNormalization()(conv1)
    conv1 = keras.layers.ReLU()(conv1)

    conv2 = keras.layers.Conv1D(filters=64, kernel_size=3, padding="same")(conv1)
    conv2 = keras.layers.BatchNormalization()(conv2)
    conv2 = keras.layers.ReLU()(conv2)

    conv3 = keras.layers.Conv1D(filters=64, kernel_size=3, padding="same")(conv2)
    conv3 = keras.layers.BatchNormalization()(conv3)
    conv3 = keras.layers.ReLU()(conv3)

    gap = keras.layers.GlobalAveragePooling1D()(conv3)

    output_layer = keras.layers.Dense(num_classes, activation="softmax")(gap)

    return keras.models.Model(inputs=input_layer, outputs=output_layer)


model = make_model(input_shape=x_train.shape[1:])

epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 100
batch_size = 32
best = str(Path(tempfile.mkdtemp()) / "best_model.keras")

callbacks = [
    keras.callbacks.ModelCheckpoint(best, save_best_only=True, monitor="val_loss"),
    keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=20, min_lr=0.0001),
    keras.callbacks.EarlyStopping(monitor="val_loss", patience=50, verbose=1),
]
model.compile(
    optimizer="adam",
    loss="sparse_categorical_crossentropy",
    metrics=["sparse_categorical_accuracy"],
)
t0 = time.perf_counter()
history = model.fit(
    x_train,
    y_train,
    batch_size=batch_size,
    epochs=epochs,
    callbacks=callbacks,
    validation_split=0.2,
    verbose=1,
)
fit_seconds = time.perf_counter() - t0

model = keras.models.load_model(best)

test_loss, test_acc = model.evaluate(x_test, y_test)

print("Test accuracy", test_acc)
print("Test loss", test_loss)
print(f"Accuracy: {test_acc * 100:.2f}")
print(f"fit seconds: {fit_seconds:.1f}")

"""keras.io's "Timeseries anomaly detection using an Autoencoder" (pavithrasv), run on edgemine.

The convolutional autoencoder of the published program (Conv1D with strides 2, Dropout,
Conv1DTranspose back up), trained with MSE on windows of normal data, its EarlyStopping, and its
threshold: the largest training window's mean absolute error; a point is anomalous when every
window covering it is. What differs: the import lines, no plots, and the data: the NAB files
need a download, so the KDD-TSAD 135 heart-rate series shipped inside edgemine stands in
(training part: points 0..1199, normal; test: 1200..7500, one labelled anomaly), in windows
of 64 points instead of 288 (the training part is short). Prints the final validation loss and
the wall time of fit() as the last two lines, after the flagged points.

    python examples/keras_timeseries_anomaly.py      # the program's 50 epochs
"""

import sys
import time

import numpy as np

import edgemine as keras
from edgemine import layers

# ---- data: KDD-TSAD 135 instead of NAB (the only changed block besides imports) ----
values, is_anomaly = keras.datasets.kdd_tsad_135.load_series()
train_values, test_values = values[:1200, None], values[1200:, None]
test_labels = is_anomaly[1200:]
TIME_STEPS = 64
# ---------------------------------------------------------------------------------------

# Normalize with the training part's mean and std (kept for the test data).
training_mean = train_values.mean()
training_std = train_values.std()
df_training_value = (train_values - training_mean) / training_std
print("Number of training samples:", len(df_training_value))


def create_sequences(values, time_steps=TIME_STEPS):
    output = []
    for i in range(len(values) - time_steps + 1):
        output.append(values[i : (i + time_steps)])
    return np.stack(output)


x_train = create_sequences(df_training_value).astype("float32")
print("Training input shape: ", x_train.shape)

model = keras.Sequential(
    [
        layers.Input(shape=(x_train.shape[1], x_train.shape[2])),
        layers.Conv1D(filters=32, kernel_size=7, padding="same", strides=2, activation="relu"),
        layers.Dropout(rate=0.2),
        layers.Conv1D(filters=16, kernel_size=7, padding="same", strides=2, activation="relu"),
        layers.Conv1DTranspose(
            filters=16, kernel_size=7, padding="same", strides=2, activation="relu"
        ),
        layers.Dropout(rate=0.2),
        layers.Conv1DTranspose(
            filters=32, kernel_size=7, padding="same", strides=2, activation="relu"
        ),
        layers.Conv1DTranspose(filters=1, kernel_size=7, padding="same"),
    ]
)
model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001), loss="mse")
model.summary()

epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 50
t0 = time.perf_counter()
history = model.fit(
    x_train,
    x_train,
    epochs=epochs,
    batch_size=128,
    validation_split=0.1,
    callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=5, mode="min")],
)
fit_seconds = time.perf_counter() - t0

# The threshold: the worst reconstruction (mean absolute error) of a training window.
x_train_pred = model.predict(x_train)
train_mae_loss = np.mean(np.abs(x_train_pred - x_train), axis=1)
threshold = np.max(train_mae_loss)
print("Reconstruction error threshold: ", threshold)

df_test_value = (test_values - training_mean) / training_std
x_test = create_sequences(df_test_value).astype("float32")
x_test_pred = model.predict(x_test)
test_mae_loss = np.mean(np.abs(x_test_pred - x_test), axis=1).reshape(-1)
anomalies = test_mae_loss > threshold
print("Number of anomaly samples: ", np.sum(anomalies))

# Point i is anomalous if the windows [(i - TIME_STEPS + 1) .. i] all are (the program's rule).
flagged = np.zeros(len(df_test_value), dtype=bool)
for data_idx in range(TIME_STEPS - 1, len(df_test_value) - TIME_STEPS + 1):
    if np.all(anomalies[data_idx - TIME_STEPS + 1 : data_idx]):
        flagged[data_idx] = True
true_positive = int(np.sum(flagged & test_labels))
print("Flagged points:", np.flatnonzero(flagged) + 1200)
print(f"Points: {int(flagged.sum())} flagged, {true_positive} of {int(test_labels.sum())} labelled")
print(f"Loss: {history.history['val_loss'][-1]:.6f}")
print(f"fit seconds: {fit_seconds:.1f}")

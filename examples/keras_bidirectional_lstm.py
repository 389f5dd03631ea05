"""keras.io's "Bidirectional LSTM on IMDB" (François Chollet), run on edgemine.

The model, compile and fit calls are the published Keras 3 program's: a functional model from
``keras.Input(shape=(None,), dtype="int32")`` (sequences of any length), an Embedding, two
Bidirectional LSTMs and a sigmoid. What differs: the import lines, and the data: IMDB needs a
download, so the tweets shipped inside edgemine stand in (negative 0 against positive 1, the
neutral ones left out), padded with ``keras.utils.pad_sequences`` as the program pads IMDB.
Prints the validation accuracy and the wall time of fit() as the last two lines.

    python examples/keras_bidirectional_lstm.py      # the program's 2 epochs
"""

import sys
import time

import edgemine as keras
from edgemine import layers

max_features = 20000  # Only consider the top 20k words
maxlen = 200  # Only consider the first 200 words of each text

# Input for variable-length sequences of integers
inputs = keras.Input(shape=(None,), dtype="int32")
# Embed each integer in a 128-dimensional vector
x = layers.Embedding(max_features, 128)(inputs)
# Add 2 bidirectional LSTMs
x = layers.Bidirectional(layers.LSTM(64, return_sequences=True))(x)
x = layers.Bidirectional(layers.LSTM(64))(x)
# Add a classifier
outputs = layers.Dense(1, activation="sigmoid")(x)
model = keras.Model(inputs, outputs)
model.summary()

# ---- data: the shipped tweets instead of IMDB (the only changed block besides imports) ----
(x_train, y_train), (x_val, y_val) = keras.datasets.tweets.load_data(
    num_words=max_features, maxlen=maxlen
)
keep_train, keep_val = y_train != 1, y_val != 1  # negative (0) and positive (2) only
x_train, y_train = x_train[keep_train], (y_train[keep_train] == 2).astype("float32")
x_val, y_val = x_val[keep_val], (y_val[keep_val] == 2).astype("float32")
# ---------------------------------------------------------------------------------------------
print(len(x_train), "Training sequences")
print(len(x_val), "Validation sequences")
x_train = keras.utils.pad_sequences(x_train, maxlen=maxlen)
x_val = keras.utils.pad_sequences(x_val, maxlen=maxlen)

epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 2
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
t0 = time.perf_counter()
history = model.fit(x_train, y_train, batch_size=32, epochs=epochs, validation_data=(x_val, y_val))
fit_seconds = time.perf_counter() - t0
print(f"Accuracy: {history.history['val_accuracy'][-1] * 100:.2f}")
print(f"fit seconds: {fit_seconds:.1f}")

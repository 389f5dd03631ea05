"""keras.io's "Sequence to sequence learning for performing number addition" (Smerity and
others), run on edgemine.

The program makes its own data (sums of numbers up to 3 digits as strings, reversed), so only
the import lines differ from the published Keras 3 program: an LSTM encoder, RepeatVector, an
LSTM decoder returning sequences, and a Dense softmax over every time step, trained with
categorical cross-entropy (averaged over the time steps, as Keras does). Prints the validation
accuracy and the wall time of fit() as the last two lines.

    python examples/keras_addition_rnn.py        # the program's 30 iterations
    python examples/keras_addition_rnn.py 3      # three
"""

import sys
import time

import numpy as np

import edgemine as keras
from edgemine import layers

np.random.seed(1337)  # the published program draws unseeded; fixed here to compare runs

# Parameters for the model and dataset.
TRAINING_SIZE = 50000
DIGITS = 3
REVERSE = True

# Maximum length of input is 'int + int' (e.g., '345+678'). Maximum length of
# int is DIGITS.
MAXLEN = DIGITS + 1 + DIGITS


class CharacterTable:
    """One-hot encoding of the characters of a set, and decoding of one-hot rows or
    probabilities back to characters."""

    def __init__(self, chars):
        self.chars = sorted(set(chars))
        self.char_indices = {c: i for i, c in enumerate(self.chars)}
        self.indices_char = dict(enumerate(self.chars))

    def encode(self, text, num_rows):
        x = np.zeros((num_rows, len(self.chars)))
        for i, c in enumerate(text):
            x[i, self.char_indices[c]] = 1
        return x

    def decode(self, x, calc_argmax=True):
        if calc_argmax:
            x = x.argmax(axis=-1)
        return "".join(self.indices_char[i] for i in x)


# All the numbers, plus sign and space for padding.
chars = "0123456789+ "
ctable = CharacterTable(chars)

questions, expected, seen = [], [], set()
print("Generating data...")
while len(questions) < TRAINING_SIZE:

    def number():
        digits = np.random.randint(1, DIGITS + 1)
        return int("".join(np.random.choice(list("0123456789")) for _ in range(digits)))

    a, b = number(), number()
    # Skip questions already seen, and x+y when y+x was (hence the sorting).
    key = tuple(sorted((a, b)))
    if key in seen:
        continue
    seen.add(key)
    q = f"{a}+{b}"
    query = q + " " * (MAXLEN - len(q))  # padded with spaces to MAXLEN
    ans = str(a + b)
    ans += " " * (DIGITS + 1 - len(ans))  # answers have at most DIGITS + 1 characters
    if REVERSE:
        query = query[::-1]  # '12+345  ' becomes '  543+21'
    questions.append(query)
    expected.append(ans)
print("Total questions:", len(questions))

print("Vectorization...")
x = np.zeros((len(questions), MAXLEN, len(chars)), dtype=bool)
y = np.zeros((len(questions), DIGITS + 1, len(chars)), dtype=bool)
for i, sentence in enumerate(questions):
    x[i] = ctable.encode(sentence, MAXLEN)
for i, sentence in enumerate(expected):
    y[i] = ctable.encode(sentence, DIGITS + 1)

# Shuffle (x, y) together: the later questions hold mostly larger numbers.
indices = np.arange(len(y))
np.random.shuffle(indices)
x, y = x[indices], y[indices]

# Set apart 10% for validation data that we never train over.
split_at = len(x) - len(x) // 10
(x_train, x_val) = x[:split_at], x[split_at:]
(y_train, y_val) = y[:split_at], y[split_at:]
print("Training Data:", x_train.shape, y_train.shape)
print("Validation Data:", x_val.shape, y_val.shape)

print("Build model...")
num_layers = 1  # Try to add more LSTM layers!

model = keras.Sequential()
# "Encode" the input sequence using a LSTM, producing an output of size 128.
model.add(layers.Input((MAXLEN, len(chars))))
model.add(layers.LSTM(128))
# Give the decoder the encoder's last output at each of the DIGITS + 1 output steps.
model.add(layers.RepeatVector(DIGITS + 1))
for _ in range(num_layers):
    model.add(layers.LSTM(128, return_sequences=True))
# A Dense applied to every time step: which character comes at each output step.
model.add(layers.Dense(len(chars), activation="softmax"))
model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
model.summary()

epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
batch_size = 32

fit_seconds = 0.0
for epoch in range(1, epochs + 1):
    print()
    print("Iteration", epoch)
    t0 = time.perf_counter()
    history = model.fit(
        x_train, y_train, batch_size=batch_size, epochs=1, validation_data=(x_val, y_val)
    )
    fit_seconds += time.perf_counter() - t0
    # Show a few validation questions with the model's answers.
    for _ in range(5):
        ind = np.random.randint(0, len(x_val))
        rowx, rowy = x_val[np.array([ind])], y_val[np.array([ind])]
        preds = np.argmax(model.predict(rowx, verbose=0), axis=-1)
        q = ctable.decode(rowx[0])
        correct = ctable.decode(rowy[0])
        guess = ctable.decode(preds[0], calc_argmax=False)
        print("Q", q[::-1] if REVERSE else q, "T", correct, "OK" if correct == guess else "..", guess)

print(f"Accuracy: {history.history['val_accuracy'][-1] * 100:.2f}")
print(f"fit seconds: {fit_seconds:.1f}")

"""The seed's LSTM program (section 4.2 of the seed document), run on edgemine.

Only the import lines and the data loading differ from the seed's Keras code.
Data: the tweet sentiment corpus shipped inside edgemine (edgemine.datasets.tweets), as
10,000-word-vocabulary token ids padded to length 100 (sources and license in
edgemine/datasets/data/SOURCES.md). The seed's 10-way softmax is kept; the corpus uses
labels 0, 1 and 2. Prints the test accuracy and the wall time of fit() as the last two lines.

Run it from anywhere once edgemine is installed:

    python examples/seed_lstm.py       # the seed's 10 epochs
    python examples/seed_lstm.py 1     # one epoch (what CI runs)
"""
import sys
import time

from edgemine.datasets import tweets
from edgemine.layers import LSTM, Dense, Embedding
from edgemine.models import Sequential
from edgemine.utils import to_categorical

epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 10

(x_train, y_train), (x_test, y_test) = tweets.load_data(num_words=10000, maxlen=100)
y_train = to_categorical(y_train, 10)
y_test = to_categorical(y_test, 10)

# --- from here on, the seed's code ---
model = Sequential()
model.add(Embedding(input_dim=10000, output_dim=64, input_length=100))
model.add(LSTM(64, return_sequences=True))
model.add(LSTM(64))
model.add(Dense(64, activation='relu'))
model.add(Dense(10, activation='softmax'))

model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])

t0 = time.perf_counter()
model.fit(x_train, y_train, epochs=epochs, batch_size=32)
fit_s = time.perf_counter() - t0

loss, accuracy = model.evaluate(x_test, y_test)
print('Accuracy: %.2f' % (accuracy * 100))
print('fit seconds: %.1f' % fit_s)

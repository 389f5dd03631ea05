"""The seed's CNN program (section 4.1 of the seed document), run on edgemine.

Only the import lines and the data loading differ from the seed's Keras code.
Data: the 5,000-image MNIST subset shipped inside edgemine (4,000 train / 1,000 test;
sources and license in edgemine/datasets/data/SOURCES.md). Prints the test accuracy
and the wall time of fit() as the last two lines.

Run it from anywhere once edgemine is installed:

    python examples/seed_cnn.py        # the seed's 10 epochs
    python examples/seed_cnn.py 1      # one epoch (what CI runs)
"""
import sys
import time

from edgemine.datasets import mnist
from edgemine.layers import Conv2D, Dense, Flatten, MaxPooling2D
from edgemine.models import Sequential
from edgemine.utils import to_categorical

epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 10

(x_train, y_train), (x_test, y_test) = mnist.load_data()
x_train = x_train.reshape(-1, 28, 28, 1).astype("float32") / 255.0
x_test = x_test.reshape(-1, 28, 28, 1).astype("float32") / 255.0
y_train = to_categorical(y_train, 10)
y_test = to_categorical(y_test, 10)

# --- from here on, the seed's code ---
model = Sequential()
model.add(Conv2D(32, (3, 3), activation='relu', input_shape=(28, 28, 1)))
model.add(MaxPooling2D((2, 2)))
model.add(Conv2D(64, (3, 3), activation='relu'))
model.add(MaxPooling2D((2, 2)))
model.add(Conv2D(64, (3, 3), activation='relu'))
model.add(Flatten())
model.add(Dense(64, activation='relu'))
model.add(Dense(10, activation='softmax'))

model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])

t0 = time.perf_counter()
model.fit(x_train, y_train, epochs=epochs, batch_size=32)
fit_s = time.perf_counter() - t0

loss, accuracy = model.evaluate(x_test, y_test)
print('Accuracy: %.2f' % (accuracy * 100))
print('fit seconds: %.1f' % fit_s)

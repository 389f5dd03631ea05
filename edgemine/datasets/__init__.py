"""Small real data sets shipped inside the package (no download at run time).

``mnist``: a 5,000-image MNIST subset (4,000 train / 1,000 test).
``tweets``: 38,158 crowd-labelled tweets, 3 sentiment classes.
``wine``: 178 wines as a CSV table, 13 measurements, 3 cultivars.
``digits``: 1,797 8x8 handwritten digits (``write_folder`` makes a folder of PNGs).
``basicmotions``: 80 smart-watch motion recordings, 100 steps x 6 channels, 4 activities.
``kdd_tsad_135``: a 7,501-point heart-rate series with one labelled anomaly.
Sources and licenses: ``edgemine/datasets/data/SOURCES.md``.
``train_validation_split``: a stratified, shuffled (seeded) validation split.

Example:
    >>> from edgemine.datasets import mnist
    >>> (x_train, y_train), (x_test, y_test) = mnist.load_data()
    >>> x_train.shape, x_test.shape
    ((4000, 28, 28), (1000, 28, 28))
"""

from edgemine.datasets import basicmotions, digits, kdd_tsad_135, mnist, tweets, wine
from edgemine.datasets.splits import train_validation_split

__all__ = [
    "basicmotions",
    "digits",
    "kdd_tsad_135",
    "mnist",
    "train_validation_split",
    "tweets",
    "wine",
]

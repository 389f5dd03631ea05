"""Files copied into every deployment bundle: ``run.py``, the runner. It needs numpy and
onnxruntime (and Pillow for images), and imports ``edgemine_inputs.py``, the copy of
``edgemine.preprocessing.inputs`` that ``write_bundle`` puts beside it."""

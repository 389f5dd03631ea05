"""Files copied into every deployment bundle: ``run.py`` (the runner) and ``png.py`` (its PNG
decoder, which edgemine's CLI uses too). They need only numpy and onnxruntime."""

"""A trained model put to use: classify images, a whole archive at once, export it, import one.

    infer         LoadedModel: a run's model, preprocessing as validation saw it, top-k
    batch         classify a zip or folder of images, with accuracy when they are labelled
    export        ONNX / TorchScript / safetensors, each checked against PyTorch
    model_import  a safetensors model (with its card) in as a run
    package       the model package zip (model.onnx, model.json, predict.py, README)
    quantize      INT8 / FP16 variants measured again on the test split, refused past 1 point
    package_predict  the package's standalone predict.py (imports nothing of CNN Studio)
    api           the HTTP API of `python -m core serve` (FastAPI)
"""

from core.lazy import facade

__all__, __getattr__, __dir__ = facade(__name__, {
    "infer": ("LoadedModel", "ModelUnavailable", "load_model", "open_image"),
    "batch": ("classify_archive", "rows_to_csv"),
    "export": ("export_run", "FORMATS"),
    "model_import": ("import_model", "EXPORT_HINT", "PICKLE_SUFFIXES"),
    "package": ("build_package",),
    "api": ("create_app",),
})

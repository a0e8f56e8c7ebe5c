"""Datasets: an upload checked and decoded into a dataset folder, decoded once more into a cache
at training size, and served to the device in batches.

    ingest     zip / folder / CSV / files in memory → checked entries → DatasetBuilder
    archive    the entries of an upload, listed without reading them
    images     one file's bytes → a clean Pillow image (L or RGB, upright)
    build      DatasetBuilder: images in, a dataset folder and manifest out, all or nothing
    split      the stratified, seeded train / val / test split
    dataset    Dataset, Item: the manifest of a dataset folder
    catalog    what the CLI and pages call: import, demo, list, delete (kept in the store)
    demo       the built-in datasets (Fashion-MNIST, digits, shapes)
    transforms the one image → array transform training and inference share
    cache      decode once: a uint8 N×H×W×C array per image size
    loader     batches drawn and augmented on the device
"""

from core.lazy import facade

__all__, __getattr__, __dir__ = facade(__name__, {
    "catalog": ("import_path", "import_uploads", "add_demo", "summaries", "remove", "demo_kinds"),
    "dataset": ("Dataset", "DatasetError", "Item", "SPLITS", "MANIFEST", "load_dataset",
                "list_datasets", "dataset_folder"),
    "cache": ("load_cache", "cache_path", "default_image_size"),
    "images": ("IMAGE_EXTENSIONS", "ImageRejected", "decode_image"),
    "transforms": ("fit_image",),
    "loader": ("Augment", "DeviceSplit", "augment_images", "to_model_input", "channel_stats"),
    "demo": ("DEMOS",),
    "build": ("DatasetBuilder",),
})

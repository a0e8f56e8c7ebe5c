"""Looking at runs: comparisons, sweeps, error analysis, explanations, latency, benchmarks.

    compare         the numbers behind the Compare page, as plain data
    sweep           one dataset over several settings, grouped and ranked
    error_analysis  validation predictions, confusion cells, cleaned dataset versions
    dedupe          a dataset version without the extra copies of its duplicates
    label_jobs      the label-error search as a background job, its saved result, the queue's edits
    data_map        a run's penultimate features of a split in 2-D (PCA or t-SNE)
    explain         Grad-CAM heat maps
    latency         single-image latency of a run's model
    bench           the engine against the naive pipeline, time to accuracy
"""

from core.lazy import facade

__all__, __getattr__, __dir__ = facade(__name__, {
    "compare": ("run_colors", "curves", "comparison_table", "config_diff", "run_confusion",
                "top_confusions"),
    "sweep": ("plan_sweep", "submit_sweep", "group_runs", "group_summary"),
    "error_analysis": ("validation_predictions", "save_dataset_version"),
    "explain": ("grad_cam", "overlay"),
    "latency": ("single_image_latency",),
    "dedupe": ("dedupe",),
    "label_jobs": ("submit_label_issues", "saved_label_issues", "queue_edits"),
    "data_map": ("data_map", "project"),
})

"""CNN Studio's engine: datasets, training, the store, jobs. Never imports Streamlit."""

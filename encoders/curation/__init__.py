"""Automatic data curation: streaming embedding of image folders, near-duplicate removal, retrieval of the pool
images nearest to curated seeds, and k-means balanced sampling (the DINOv2 data pipeline, in small)."""

from encoders.curation.dedup import DedupResult, deduplicate
from encoders.curation.embed import Embeddings, embed_images, load_embeddings
from encoders.curation.kmeans import KMeansResult, balanced_sample, kmeans
from encoders.curation.retrieval import RetrievalResult, retrieve_nearest

__all__ = [
    "DedupResult",
    "Embeddings",
    "KMeansResult",
    "RetrievalResult",
    "balanced_sample",
    "deduplicate",
    "embed_images",
    "kmeans",
    "load_embeddings",
    "retrieve_nearest",
]

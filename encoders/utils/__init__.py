"""Run infrastructure shared by every CLI: typed configs, logging, progress, TensorBoard, seeding."""

"""Config, output paths, solver and CRF helpers of the segmentation stages."""

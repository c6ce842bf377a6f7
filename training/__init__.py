"""Training: turns MNIST into versioned SavedModels that TF Serving loads."""

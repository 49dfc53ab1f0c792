"""The run's record: its folder and file names, result rows and their store, folds and seeds."""

"""Data stage: read users' medical images, prepare them, and describe them (prepared-dataset contract in `manifest`)."""

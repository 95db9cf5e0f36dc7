"""The build pipeline: the grid of cells (target × format × precision), isolated converters."""

"""Geometry for lotus-recon: SfM, alignment, fusion, meshing, export. Imports no torch."""

"""Datasets: real SIRST folder layouts, readers, training/eval datasets, synth, checks."""

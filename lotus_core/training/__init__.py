"""Training Lotus models: the paper's adaptation protocol, at any size.

    data.py       folders of image + depth (.npy) + normal (.npy) maps; targets in Lotus form
                  (`python -m sample_scenes training-data` renders generated scenes into it)
    config.py     VaeConfig / LotusConfig dataclasses (saved with every checkpoint)
    models.py     tiny VAE / UNet builders and the diffusers-layout checkpoint writer
    vae.py        training a tiny AutoencoderKL (frozen afterwards, as Lotus freezes SD's VAE)
    lotus.py      the Lotus stage: x0 at t = T, Lotus-G / Lotus-D, the detail preserver
    loop.py       the optimisation loop shared by both stages (resume, log, save)
    state.py      resumable training state, written atomically, and the JSONL loss log
    metrics.py    held-out depth (AbsRel, delta1 after alignment) and normal (angle) metrics

Command line: `python -m lotus_core.train --help`.
"""

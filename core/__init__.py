"""Implosion Lab core library: concept world, mini latent diffusion, AD metrics, poisoning, jobs.

No Streamlit here: the pages in ``pages/`` are thin views over these functions.
"""

__version__ = "0.1.0"

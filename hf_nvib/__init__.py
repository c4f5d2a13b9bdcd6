"""hf_nvib: the nonparametric variational information bottleneck for Hugging Face seq2seq models."""

__version__ = "0.1.0"

__all__ = ["__version__"]

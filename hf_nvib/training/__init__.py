"""Training: KL-weight schedules, the callback applying them, and the logging Seq2SeqTrainer."""

from hf_nvib.training.callback import NvibKLCallback, find_nvib_model
from hf_nvib.training.schedules import SCHEDULE_KINDS, KLSchedule, parse_schedule
from hf_nvib.training.trainer import NvibSeq2SeqTrainer

__all__ = [
    "SCHEDULE_KINDS",
    "KLSchedule",
    "NvibKLCallback",
    "NvibSeq2SeqTrainer",
    "find_nvib_model",
    "parse_schedule",
]

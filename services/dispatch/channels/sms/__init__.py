"""SMS channel (HTTP gateway; batched, TPS-paced, red-first; receipts by callback)."""

from services.dispatch.channels.sms.channel import SmsChannel
from services.dispatch.channels.sms.config import SmsConfig

__all__ = ["SmsChannel", "SmsConfig"]

"""Send a WhatsApp template message to every recipient of a spreadsheet, at most once."""

__version__ = "0.1.0"

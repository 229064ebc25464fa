"""The float64 attention reference lives in floorline.kernels.reference.attention (the bench's
accuracy report uses it too); tests import it from here."""

from floorline.kernels.reference.attention import attention_f64, decode_reference, dequant_pages, gather_sequence

__all__ = ["attention_f64", "decode_reference", "dequant_pages", "gather_sequence"]

"""How much a Formfile may hold, in either form.

The text (any form) at most `MAX_TEXT_BYTES` and `MAX_LINES`; strings at most
`MAX_STRING_BYTES`; at most `MAX_STEPS` steps and `MAX_ITEMS` entries in any list or map. A
parsed model must also fit `MAX_TEXT_BYTES` both as text and as `normalized_json`
(`model.model_problems`), so what one form accepts the other accepts too. At most
`MAX_PROBLEMS` problems are reported.
"""

from __future__ import annotations

from typing import Final

MAX_TEXT_BYTES: Final = 64 * 1024
MAX_LINES: Final = 1000
MAX_STRING_BYTES: Final = 4 * 1024
MAX_STEPS: Final = 256
MAX_ITEMS: Final = 256
MAX_PROBLEMS: Final = 100

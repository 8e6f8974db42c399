"""Documented bounds: what one caller can make leadrelay accept, store or hold (README:
"Limits").

Temporal refuses a payload above 2 MB (and a refused continue-as-new input wedges the
workflow), and terminates a history above 50 MB or 51,200 events. Everything a lead
workflow carries from run to run is therefore bounded by the numbers below, whatever one
person sends.
"""

from __future__ import annotations

TEMPORAL_PAYLOAD_LIMIT_BYTES = 2 * 1024 * 1024
"""Temporal's hard limit for one payload (a signal argument, a continue-as-new input)."""
TEMPORAL_MAX_ID_CHARS = 1000
"""`limit.maxIDLength`: a longer workflow id is refused with INVALID_ARGUMENT."""

# --- one person's lead workflow --------------------------------------------------------

LEAD_PENDING_BYTES = 1024 * 1024
"""Submissions waiting in one lead workflow, in payload bytes. While they fit, each is kept
whole; past this, a new submission is kept cut (see `CUT_TEXT_CHARS`), and one that does
not fit even cut becomes a dead letter. Half of Temporal's limit, so that the carried state
(pending, remembered ids, dead letters, operator requests) always fits in one payload."""

CUT_TEXT_CHARS = 256
"""A cut submission keeps its contact fields, form and UTM, each text at most this long;
its other fields are replaced by a notice saying how much was cut. The note in amoCRM
shows the notice; the whole submission stays in the workflow's Temporal history."""

PROCESSED_IDS_KEPT = 500
"""Submission ids a lead workflow remembers to drop repeats (about 35 KB)."""

DEAD_LETTERS_KEPT = 50
"""Dead letters listed in a lead workflow's state; older ones are only counted."""

SKIPPED_KEPT = 20
"""Submissions (or events) set aside by the `skip` signal and kept in a workflow's state;
older ones are only counted."""

SKIPPED_SUBMISSION_BYTES = 16 * 1024
"""A skipped submission larger than this, in payload bytes, is kept cut; with SKIPPED_KEPT
that bounds the skipped list to about 320 KB of the carried state."""

OPERATOR_REQUESTS_KEPT = 20
"""Queued operator requests (resync, note); a signal past this is refused with an error."""

OPERATOR_NOTE_CHARS = 4000
"""An operator's note (signal `add_note`) is cut to this many characters."""

ERROR_MESSAGE_CHARS = 2000
"""`last_error.message` is cut to this many characters."""

AMOCRM_PAGES_MAX = 10
"""A contact search or a lead read follows `_links.next` for at most this many pages of
250 (one request each); what lies beyond is not read."""

# --- one amoCRM entity's workflow -------------------------------------------------------

ENTITY_PENDING_BYTES = 1024 * 1024
"""Events waiting in one entity workflow, in payload bytes; past this a new event keeps only
its routing fields (its raw item is dropped), and past that it is refused and counted."""

# --- Landing form bodies (`POST /api/landing/{form}`) -----------------------------------
MAX_BODY_BYTES = 64 * 1024
"""A larger body is answered 413."""
MAX_JSON_DEPTH = 8
"""Nesting of objects and lists; `{"metadata": {"quizAnswers": [{"q": 1}]}}` is 4."""
MAX_NUMBER_DIGITS = 40
"""Characters of one JSON number (Python refuses ints over 4,300 digits with an error)."""
MAX_FIELDS = 200
"""Keys and list items in the whole body, at every depth."""
MAX_KEY_CHARS = 100
"""Characters of one field name."""
MAX_VALUE_CHARS = 2048
"""Characters of a short value: name, phone, email, source, page, referrer, UTM tags.
Longer is a 422 that names the field; URLs with click ids fit."""
MAX_FREE_TEXT_CHARS = 4000
"""Characters kept of free text (`comment` and every other string value); the rest is cut
at the edge, and the note in amoCRM lists the cut fields."""
MAX_SUBMISSION_PAYLOAD_BYTES = 128 * 1024
"""Serialized size of one submission as Temporal receives it; a larger one is a 413. A
lead workflow keeps several pending submissions within LEAD_PENDING_BYTES, so this stays
well below it."""

# --- Contacts (RFC 5321) ---------------------------------------------------------------
MAX_EMAIL_CHARS = 254
MAX_EMAIL_LOCAL_CHARS = 64
MAX_PHONE_CHARS = 64
"""What anyone writes for a phone, spaces and brackets included."""

# --- amoCRM webhooks (`POST /api/amocrm/{hook}`) ----------------------------------------
MAX_WEBHOOK_BYTES = 1024 * 1024
"""Webhooks are never refused for their size: the first megabyte is kept raw. Its base64
form (1.4 MB) still fits one Temporal payload."""
MAX_PARCEL_PAYLOAD_BYTES = 1536 * 1024
"""Any delivery larger than this is not sent to Temporal; a webhook's goes to the dead
letters, where an operator sees it."""

# --- Per person, per client ------------------------------------------------------------
PERSON_SUBMISSIONS_PER_WINDOW = 20
"""Submissions one contact key may make within PERSON_WINDOW_SECONDS; the next is a 429
with Retry-After. Repeated clicks count too."""
PERSON_WINDOW_SECONDS = 600.0
PERSON_TRACKED_KEYS = 100_000
"""Contact keys the per-person window remembers; the least recently seen are forgotten."""
CLIENT_TRACKED_ADDRESSES = 100_000
"""Client addresses the optional per-IP limit remembers."""

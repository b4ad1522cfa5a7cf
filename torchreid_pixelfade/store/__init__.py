"""The protected folder: records in, PNG files + manifest out, and the one reader of it."""
from .folder import MANIFEST, ProtectedFolder, StoredImage
from .identity import (ProtectionIdentity, file_sha256, protection_identity, state_dict_sha256,
                       weights_digest)
from .lock import FolderLockedError
from .paths import UnsafePathError
from .records import (ImageRecord, evenly_spaced, first_identities, records_from_dataset,
                      records_from_items)
from .writer import (ON_MISSED_CONSTRAINT, ConstraintMissedError, check_batch_size,
                     check_constraint, check_on_missed_constraint, load_batch, merge_parts,
                     pending, protect_records)

__all__ = ["MANIFEST", "ProtectedFolder", "StoredImage", "ProtectionIdentity", "file_sha256",
           "protection_identity", "state_dict_sha256", "weights_digest", "ImageRecord",
           "evenly_spaced", "first_identities", "records_from_dataset", "records_from_items",
           "load_batch", "merge_parts", "pending", "protect_records", "ON_MISSED_CONSTRAINT",
           "ConstraintMissedError", "check_batch_size", "check_constraint",
           "check_on_missed_constraint", "FolderLockedError", "UnsafePathError"]

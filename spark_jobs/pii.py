"""PII never lands in clear text outside the restricted zone: columns become join tokens and display masks.

For a contract column ``c`` with a ``pii`` kind:

- ``c_token`` = lowercase hex HMAC-SHA256(key, normalised value), for the kinds people are joined on
  (``id_number``, ``phone``, ``identifier``, ``plate``). The same person gets the same token in every
  table and every run, so marts join on tokens without ever seeing the value; without the key a token
  cannot be reversed by hashing every phone number.
- ``c_masked``: what a screen may show (``name`` 张** keeps the surname, ``id_number`` 110***********1234,
  ``phone`` 138****1234, ``plate`` 京A****5, ``address`` first 6 characters + ****). ``identifier`` kinds
  (app user ids, WeChat openids) have no display form.

The HMAC is computed with native Spark functions rather than a Python UDF: no Python worker round trip
per row, and it runs on any cluster without shipping code. HMAC(K, m) = sha256((K ^ opad) || sha256((K ^
ipad) || m)); the two padded keys are computed here in Python and enter the plan as binary literals.
:func:`mo.pii.token` is the same function in plain Python (the serving layer tokenises a looked-up phone
with it; re-exported here), and a unit test holds the two together.

Normalisation before hashing, so formatting differences do not split one person into two tokens:
``id_number`` trimmed and upper-cased (the check digit X), ``phone`` digits only without a leading
86 country code, ``plate`` upper-cased without spaces, middle dots and hyphens, ``identifier`` trimmed.
Only ASCII spaces are trimmed, identically in Spark and Python.
"""

from __future__ import annotations

from mo.contracts import TableContract
from mo.pii import (  # noqa: F401  (re-exported: the lake and its tests import them from here)
    MASKED_KINDS,
    PII_KINDS,
    TOKENISED_KINDS,
    mask,
    normalise,
    padded_keys,
    token,
)

# --- Spark (native functions only) ------------------------------------------------------------------


def normalise_col(kind: str, col):
    from pyspark.sql import functions as F

    if kind == "id_number":
        return F.upper(F.trim(col))
    if kind == "phone":
        digits = F.regexp_replace(col, "[^0-9]", "")
        return F.when((F.length(digits) == 13) & digits.startswith("86"), F.substring(digits, 3, 11)).otherwise(digits)
    if kind == "plate":
        return F.upper(F.regexp_replace(col, "[ \\t·\\-]", ""))
    return F.trim(col)


def hmac_sha256_hex(col, key: bytes):
    """Lowercase hex HMAC-SHA256(key, UTF-8 bytes of ``col``), built from sha2/unhex/concat."""
    from pyspark.sql import functions as F

    inner_key, outer_key = padded_keys(key)
    inner = F.sha2(F.concat(F.unhex(F.lit(inner_key.hex())), F.encode(col, "UTF-8")), 256)
    return F.sha2(F.concat(F.unhex(F.lit(outer_key.hex())), F.unhex(inner)), 256)


def token_col(kind: str, col, key: bytes):
    return hmac_sha256_hex(normalise_col(kind, col), key)


def mask_col(kind: str, col):
    from pyspark.sql import functions as F

    if kind == "name":
        return F.concat(F.substring(col, 1, 1), F.lit("**"))
    norm = normalise_col(kind, col) if kind in ("id_number", "phone", "plate") else col
    if kind == "id_number":
        return F.concat(
            F.substring(norm, 1, 3),
            F.regexp_replace(norm.substr(F.lit(4), F.greatest(F.length(norm) - 7, F.lit(0))), ".", "*"),
            F.substring(norm, -4, 4),
        )
    if kind == "phone":
        return F.concat(F.substring(norm, 1, 3), F.lit("****"), F.substring(norm, -4, 4))
    if kind == "plate":
        return F.concat(F.substring(norm, 1, 2), F.lit("****"), F.substring(norm, -1, 1))
    return F.concat(F.substring(col, 1, 6), F.lit("****"))  # address


def with_pii_outputs(df, contract: TableContract, key: bytes):
    """``df`` plus ``<c>_token`` / ``<c>_masked`` for every PII column ``c`` (clear columns kept).

    One frame from which both bronze (tokens and masks) and the restricted staging table (clear values
    and tokens) are selected, so each token is computed once per row however many tables it goes to.
    """
    extra = {}
    for c in contract.pii_columns:
        if c.name not in df.columns:
            continue
        if c.pii in TOKENISED_KINDS:
            extra[f"{c.name}_token"] = token_col(c.pii, df[c.name], key)
        if c.pii in MASKED_KINDS:
            extra[f"{c.name}_masked"] = mask_col(c.pii, df[c.name])
    return df.withColumns(extra) if extra else df


def transform_tokenise(df, contract: TableContract, key: bytes):
    """Replace every PII column by its token and/or mask, in place of the column (order kept).

    Columns of ``df`` that the contract does not know (additive schema evolution) pass through.
    """
    from pyspark.sql import functions as F

    pii = {c.name: c.pii for c in contract.pii_columns}
    out = []
    for name in df.columns:
        kind = pii.get(name)
        if kind is None:
            out.append(F.col(name))
            continue
        if kind in TOKENISED_KINDS:
            out.append(token_col(kind, F.col(name), key).alias(f"{name}_token"))  # null stays null
        if kind in MASKED_KINDS:
            out.append(mask_col(kind, F.col(name)).alias(f"{name}_masked"))
    return df.select(*out)


def transform_restricted(df, contract: TableContract, key: bytes, extra: tuple[str, ...] = ()):
    """The clear values for the restricted zone: id, each PII column and its token, updated_at."""
    from pyspark.sql import functions as F

    cols = [F.col(contract.primary_key)]
    for c in contract.pii_columns:
        cols.append(F.col(c.name))
        if c.pii in TOKENISED_KINDS:
            cols.append(token_col(c.pii, F.col(c.name), key).alias(f"{c.name}_token"))
    cols.append(F.col(contract.watermark))
    cols += [F.col(e) for e in extra]
    return df.select(*cols)

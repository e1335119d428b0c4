"""LDAP search filters for directory logins, built so that no input can change their shape.

Every value that comes from outside (a username, a user's DN) enters a filter only through
:func:`escape_filter_value` (RFC 4515): ``*``, ``(``, ``)``, ``\\``, NUL, the other control
characters and every byte of a non-ASCII character become ``\\XX``. So ``*)(uid=*`` is matched as
those nine characters, never as a wildcard or a second assertion. The configured parts
(``user_filter``, ``group_filter``) are checked with :func:`filter_problem` once, at config time.
"""

from __future__ import annotations

import re

# Active Directory: the login name, the matching rule that follows nested group membership
# (LDAP_MATCHING_RULE_IN_CHAIN) and a user filter without disabled accounts
# (userAccountControl bit 2, ACCOUNTDISABLE, tested with LDAP_MATCHING_RULE_BIT_AND).
AD_USERNAME_ATTRIBUTE = "sAMAccountName"
AD_NESTED_GROUP_FILTER = "(member:1.2.840.113556.1.4.1941:={dn})"
AD_ENABLED_USER_FILTER = (
    "(&(objectCategory=person)(objectClass=user)"
    "(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"
)
AD_GROUP_NAME_ATTRIBUTE = "cn"

DN_PLACEHOLDER = "{dn}"

_ATTRIBUTE = re.compile(r"(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)(?:;[A-Za-z0-9-]+)*", re.ASCII)
# item = attr [":dn"] [":" rule] ("=" | "~=" | ">=" | "<=" | ":=") value; attr may be empty
# only in the extensible form ":rule:=".
_ITEM = re.compile(
    r"(?P<attr>[A-Za-z0-9.;-]*)(?P<ext>(?::dn)?(?::[A-Za-z0-9.-]+)?:)?(?P<op>[~<>]?=)(?P<value>.*)",
    re.ASCII | re.DOTALL,
)
_ESCAPE = re.compile(r"\\(?:[0-9A-Fa-f]{2})")
_NEEDS_ESCAPE = frozenset(b"*()\\")


def escape_filter_value(value: str) -> str:
    """RFC 4515 assertion-value escaping; every byte outside printable ASCII becomes ``\\XX``."""
    out: list[str] = []
    for byte in value.encode("utf-8", errors="surrogatepass"):
        if byte in _NEEDS_ESCAPE or byte < 0x20 or byte >= 0x7F:
            out.append(f"\\{byte:02x}")
        else:
            out.append(chr(byte))
    return "".join(out)


def escape_dn_value(value: str) -> str:
    """RFC 4514 escaping of one attribute value inside a DN (``cn=VALUE,...``)."""
    out: list[str] = []
    for index, char in enumerate(value):
        if char in ',+"\\<>;=' or (char == "#" and index == 0):
            out.append("\\" + char)
        elif char == " " and index in (0, len(value) - 1):
            out.append("\\ ")
        elif char == "\x00":
            out.append("\\00")
        else:
            out.append(char)
    return "".join(out)


def user_search_filter(user_filter: str, username_attribute: str, username: str) -> str:
    """``(&USER_FILTER(ATTRIBUTE=NAME))`` with NAME escaped; no ``&`` when USER_FILTER is empty."""
    if not _ATTRIBUTE.fullmatch(username_attribute):
        raise ValueError(f"not an LDAP attribute name: {username_attribute!r}")
    assertion = f"({username_attribute}={escape_filter_value(username)})"
    user_filter = user_filter.strip()
    return f"(&{user_filter}{assertion})" if user_filter else assertion


def group_search_filter(group_filter: str, dn: str) -> str:
    """The group filter with every ``{dn}`` replaced by the user's DN, escaped (RFC 4515)."""
    if DN_PLACEHOLDER not in group_filter:
        raise ValueError(f"the group filter has no {DN_PLACEHOLDER}: {group_filter!r}")
    # str.replace, not str.format: braces elsewhere in the filter stay as they are.
    return group_filter.replace(DN_PLACEHOLDER, escape_filter_value(dn))


def ad_user_search_filter(username: str) -> str:
    """The Active Directory user search: enabled accounts with this sAMAccountName."""
    return user_search_filter(AD_ENABLED_USER_FILTER, AD_USERNAME_ATTRIBUTE, username)


def ad_nested_group_search_filter(dn: str) -> str:
    """Every group the DN belongs to, directly or through nested groups (AD only)."""
    return group_search_filter(AD_NESTED_GROUP_FILTER, dn)


def filter_problem(text: str, *, placeholder: bool = False) -> str | None:
    """Why ``text`` is not one RFC 4515 filter, or None. ``placeholder``: ``{dn}`` is required
    and stands for a value."""
    if placeholder:
        if DN_PLACEHOLDER not in text:
            return f"has no {DN_PLACEHOLDER}"
        text = text.replace(DN_PLACEHOLDER, "x")
    try:
        end = _parse_filter(text, 0)
    except ValueError as exc:
        return str(exc)
    if end != len(text):
        return f"unexpected text after the filter at {end}: {text[end:]!r}"
    return None


def _parse_filter(text: str, pos: int) -> int:
    """Parse ``(...)`` at ``pos``; return the index after its closing parenthesis."""
    if pos >= len(text) or text[pos] != "(":
        raise ValueError(f"expected '(' at {pos}")
    pos += 1
    if pos < len(text) and text[pos] in "&|!":
        operator, pos = text[pos], pos + 1
        count = 0
        while pos < len(text) and text[pos] == "(":
            pos = _parse_filter(text, pos)
            count += 1
        if count == 0 or (operator == "!" and count != 1):
            raise ValueError(f"'{operator}' needs {'one filter' if operator == '!' else 'filters'}")
    else:
        close = text.find(")", pos)
        if close < 0:
            raise ValueError(f"unclosed '(' before {pos}")
        _check_item(text[pos:close], pos)
        pos = close
    if pos >= len(text) or text[pos] != ")":
        raise ValueError(f"expected ')' at {pos}")
    return pos + 1


def _check_item(item: str, pos: int) -> None:
    match = _ITEM.fullmatch(item)
    if match is None:
        raise ValueError(f"not an assertion at {pos}: {item!r}")
    attr, ext, op, value = match["attr"], match["ext"], match["op"], match["value"]
    if ext and op != "=":
        raise ValueError(f"extensible match needs ':=' at {pos}: {item!r}")
    if (attr and not _ATTRIBUTE.fullmatch(attr)) or (not attr and not (ext and ext.count(":") >= 2)):
        raise ValueError(f"bad attribute at {pos}: {item!r}")
    if "(" in value or "\\" in _ESCAPE.sub("", value):
        raise ValueError(f"unescaped '(' or '\\' in the value at {pos}: {item!r}")

"""LDAP filters: RFC 4515 escaping, the user and group searches, the Active Directory forms."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.identity.ldap_filters import (
    AD_ENABLED_USER_FILTER,
    AD_NESTED_GROUP_FILTER,
    ad_nested_group_search_filter,
    ad_user_search_filter,
    escape_dn_value,
    escape_filter_value,
    filter_problem,
    group_search_filter,
    user_search_filter,
)

PEOPLE = "(objectClass=person)"


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("alice", "alice"),
        ("", ""),
        ("*", r"\2a"),
        ("(", r"\28"),
        (")", r"\29"),
        ("\\", r"\5c"),
        ("\x00", r"\00"),
        ("a\nb", r"a\0ab"),
        ("\x7f", r"\7f"),
        ("*)(uid=*", r"\2a\29\28uid=\2a"),
        ("admin)(|(uid=*", r"admin\29\28|\28uid=\2a"),
        (r"\2a", r"\5c2a"),  # an escape sequence in the input is text, not an escape
        ("josé", r"jos\c3\a9"),
        ("ü*", r"\c3\bc\2a"),
        ("日本", r"\e6\97\a5\e6\9c\ac"),
        ("\U0001f600", r"\f0\9f\98\80"),
        ("a=b,c&|!~<>", "a=b,c&|!~<>"),  # not special inside a value
        ("\ud800", r"\ed\a0\80"),  # a lone surrogate is escaped too, never an exception
    ],
)
def test_escape_filter_value(value: str, escaped: str) -> None:
    assert escape_filter_value(value) == escaped


@pytest.mark.parametrize(
    ("user_filter", "attribute", "username", "expected"),
    [
        (PEOPLE, "uid", "alice", "(&(objectClass=person)(uid=alice))"),
        ("", "uid", "alice", "(uid=alice)"),
        ("  ", "uid", "alice", "(uid=alice)"),
        (PEOPLE, "uid", "*", r"(&(objectClass=person)(uid=\2a))"),
        (PEOPLE, "uid", "*)(uid=*", r"(&(objectClass=person)(uid=\2a\29\28uid=\2a))"),
        (PEOPLE, "uid", "x)(|(objectClass=*)", r"(&(objectClass=person)(uid=x\29\28|\28objectClass=\2a\29))"),
        (PEOPLE, "uid", "grace*(ops)", r"(&(objectClass=person)(uid=grace\2a\28ops\29))"),
        (PEOPLE, "mail", "a@b.org", "(&(objectClass=person)(mail=a@b.org))"),
        (PEOPLE, "2.5.4.3", "x", "(&(objectClass=person)(2.5.4.3=x))"),
        ("(&(objectClass=person)(!(x=1)))", "cn", "y", "(&(&(objectClass=person)(!(x=1)))(cn=y))"),
    ],
)
def test_user_search_filter(user_filter: str, attribute: str, username: str, expected: str) -> None:
    assert user_search_filter(user_filter, attribute, username) == expected


@pytest.mark.parametrize("attribute", ["", "uid)", "u id", "(uid", "uid=x", "1uid", "uid*"])
def test_user_search_filter_refuses_a_bad_attribute(attribute: str) -> None:
    with pytest.raises(ValueError, match="not an LDAP attribute name"):
        user_search_filter(PEOPLE, attribute, "alice")


@pytest.mark.parametrize(
    ("template", "dn", "expected"),
    [
        ("(member={dn})", "uid=alice,ou=people,dc=example,dc=org",
         "(member=uid=alice,ou=people,dc=example,dc=org)"),
        ("(member={dn})", r"cn=Hall\, Heidi,ou=people,dc=example,dc=org",
         r"(member=cn=Hall\5c, Heidi,ou=people,dc=example,dc=org)"),
        ("(member={dn})", "uid=grace*(ops),ou=people,dc=example,dc=org",
         r"(member=uid=grace\2a\28ops\29,ou=people,dc=example,dc=org)"),
        ("(member={dn})", "uid=*)(cn=*,dc=x", r"(member=uid=\2a\29\28cn=\2a,dc=x)"),
        ("(|(member={dn})(uniqueMember={dn}))", "uid=a,dc=x",
         "(|(member=uid=a,dc=x)(uniqueMember=uid=a,dc=x))"),
        ("(&(objectClass=groupOfNames)(member={dn}))", "uid=josé,dc=x",
         r"(&(objectClass=groupOfNames)(member=uid=jos\c3\a9,dc=x))"),
        ("(&(cn={{x}})(member={dn}))", "uid=a,dc=x", "(&(cn={{x}})(member=uid=a,dc=x))"),
        ("(member={dn})", "uid={dn},dc=x", "(member=uid={dn},dc=x)"),  # substituted once
    ],
)
def test_group_search_filter(template: str, dn: str, expected: str) -> None:
    assert group_search_filter(template, dn) == expected


def test_group_search_filter_needs_the_placeholder() -> None:
    with pytest.raises(ValueError, match=r"no \{dn\}"):
        group_search_filter("(member=uid=alice)", "uid=alice")


def test_active_directory_forms() -> None:
    assert ad_user_search_filter("jdoe") == (
        "(&(&(objectCategory=person)(objectClass=user)"
        "(!(userAccountControl:1.2.840.113556.1.4.803:=2)))(sAMAccountName=jdoe))"
    )
    assert ad_user_search_filter("*").endswith(r"(sAMAccountName=\2a))")
    dn = r"CN=Doe\, John,OU=Staff,DC=corp,DC=example"
    assert ad_nested_group_search_filter(dn) == (
        r"(member:1.2.840.113556.1.4.1941:=CN=Doe\5c, John,OU=Staff,DC=corp,DC=example)"
    )
    assert filter_problem(AD_ENABLED_USER_FILTER) is None
    assert filter_problem(AD_NESTED_GROUP_FILTER, placeholder=True) is None


@pytest.mark.parametrize(
    "text",
    [
        "(objectClass=person)",
        "(objectClass=*)",
        "(cn=a*b*c)",
        "(&(objectClass=person)(uid=x))",
        "(|(a=1)(b=2)(c=3))",
        "(!(a=1))",
        "(uidNumber>=1000)",
        "(cn~=fred)",
        "(cn:caseExactMatch:=Fred)",
        "(:dn:2.4.6.8.10:=Dino)",
        "(member:1.2.840.113556.1.4.1941:=cn=x)",
        r"(cn=a\2a\28\29\5c)",
        "(cn;lang-de=x)",
    ],
)
def test_good_filters(text: str) -> None:
    assert filter_problem(text) is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "expected '('"),
        ("objectClass=person", "expected '('"),
        ("(objectClass=person", "unclosed"),
        ("(objectClass=person))", "unexpected text"),
        ("(a=1)(b=2)", "unexpected text"),
        ("(&)", "needs filters"),
        ("(!(a=1)(b=2))", "needs one filter"),
        ("(cn=a(b)", "unescaped"),
        (r"(cn=a\zz)", "unescaped"),
        ("(cn)", "not an assertion"),
        ("(=x)", "bad attribute"),
        ("(c n=x)", "not an assertion"),
        ("(1uid=x)", "bad attribute"),
        ("(cn:rule:>=x)", "needs ':='"),
        ("(&(a=1)", "expected ')'"),
    ],
)
def test_bad_filters(text: str, problem: str) -> None:
    found = filter_problem(text)
    assert found is not None and problem in found, found


def test_group_filter_problem_needs_the_placeholder() -> None:
    assert filter_problem("(member={dn})", placeholder=True) is None
    assert filter_problem("(member=x)", placeholder=True) == "has no {dn}"
    assert filter_problem("(member={dn}", placeholder=True) is not None


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("alice", "alice"),
        ("Hall, Heidi", r"Hall\, Heidi"),
        ('a+b"c\\d<e>f;g=h', r'a\+b\"c\\d\<e\>f\;g\=h'),
        ("#x", r"\#x"),
        ("x#", "x#"),
        (" x ", r"\ x\ "),
        ("a\x00b", r"a\00b"),
    ],
)
def test_escape_dn_value(value: str, escaped: str) -> None:
    assert escape_dn_value(value) == escaped


_ONE_ASSERTION = re.compile(r"\(&\(objectClass=person\)\(uid=[^()*\\]*(?:\\[0-9a-f]{2}[^()*\\]*)*\)\)")


@given(st.text())
def test_no_username_changes_the_shape_of_the_user_search(username: str) -> None:
    built = user_search_filter(PEOPLE, "uid", username)
    assert _ONE_ASSERTION.fullmatch(built), built
    assert filter_problem(built) is None


@given(st.text())
def test_no_dn_changes_the_shape_of_the_group_search(dn: str) -> None:
    built = group_search_filter("(&(objectClass=groupOfNames)(member={dn}))", dn)
    assert built.count("(") == 3 and built.count(")") == 3
    assert filter_problem(built) is None

"""The Elasticsearch index template derived from the registry (no server needed).

The dynamic templates' name patterns are Java regular expressions; the subset used (anchors,
a non-capturing group of alternatives, backslash-escaped punctuation) means the same in Python's
`re`, which these tests use to check what each rule matches.
"""
from __future__ import annotations

import io
import re

import pytest

from ipfix_antrea import InformationElement, Registry, default_registry
from ipfix_antrea.sinks.es_mapping import (
    document_mappings,
    element_mapping,
    index_patterns_for,
    index_template,
)

TEXT_WITH_KEYWORD = {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}
IP_WITH_KEYWORD = {"type": "ip", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}

EXPECTED = {
    "string": TEXT_WITH_KEYWORD,
    "ipv4Address": IP_WITH_KEYWORD,
    "ipv6Address": IP_WITH_KEYWORD,
    "dateTimeSeconds": {"type": "date", "format": "strict_date_optional_time"},
    "dateTimeMilliseconds": {"type": "date", "format": "strict_date_optional_time"},
    "dateTimeMicroseconds": {"type": "date_nanos", "format": "strict_date_optional_time_nanos"},
    "dateTimeNanoseconds": {"type": "date_nanos", "format": "strict_date_optional_time_nanos"},
    "unsigned8": {"type": "long"},
    "unsigned16": {"type": "long"},
    "unsigned32": {"type": "long"},
    "unsigned64": {"type": "unsigned_long"},
    "signed8": {"type": "long"},
    "signed16": {"type": "long"},
    "signed32": {"type": "long"},
    "signed64": {"type": "long"},
    "float32": {"type": "double", "ignore_malformed": True},
    "float64": {"type": "double", "ignore_malformed": True},
    "boolean": {"type": "boolean"},
    "macAddress": {"type": "keyword", "ignore_above": 256},
    "octetArray": {"type": "keyword", "ignore_above": 4096},
}


@pytest.mark.parametrize("data_type, mapping", EXPECTED.items())
def test_each_abstract_type_has_its_elasticsearch_mapping(data_type, mapping):
    assert element_mapping(data_type) == mapping


def test_unsigned64_maps_to_long_where_unsigned_long_is_missing():
    assert element_mapping("unsigned64", unsigned_long=False) == {"type": "long"}


@pytest.mark.parametrize("data_type", ["basicList", "subTemplateList", "subTemplateMultiList"])
def test_list_types_have_no_mapping_of_their_own(data_type):
    assert element_mapping(data_type) is None


def rules(mappings: dict) -> dict[str, dict]:
    return {name: rule for entry in mappings["dynamic_templates"] for name, rule in entry.items()}


def rules_matching(mappings: dict, field: str) -> list[str]:
    return [name for name, rule in rules(mappings).items() if re.search(rule["match"], field)]


def mapping_for(mappings: dict, field: str) -> dict | None:
    """What Elasticsearch would map ``ipfix.<field>`` to: the first rule that matches."""
    for name in rules_matching(mappings, field):
        return rules(mappings)[name]["mapping"]
    return None


@pytest.mark.parametrize("name, data_type", [
    ("sourcePodName", "string"), ("sourceIPv4Address", "ipv4Address"),
    ("destinationIPv6Address", "ipv6Address"), ("flowEndSeconds", "dateTimeSeconds"),
    ("flowStartNanoseconds", "dateTimeNanoseconds"), ("octetDeltaCount", "unsigned64"),
    ("reverseOctetDeltaCount", "unsigned64"), ("destinationServicePort", "unsigned16"),
    ("samplingProbability", "float64"), ("sourceMacAddress", "macAddress"),
])
def test_a_registry_element_is_mapped_by_its_type(name, data_type):
    assert mapping_for(document_mappings(default_registry()), name) == element_mapping(data_type)


def test_every_registry_name_is_matched_by_exactly_one_rule_or_none_for_lists():
    registry = default_registry()
    mappings = document_mappings(registry)
    for ie in registry:
        matched = rules_matching(mappings, ie.name)
        if ie.data_type in ("basicList", "subTemplateList", "subTemplateMultiList"):
            assert matched == [], ie.name
        else:
            assert len(matched) == 1, (ie.name, matched)


def test_an_element_added_to_the_registry_is_mapped_by_its_type():
    registry = default_registry()
    registry.load_csv(io.StringIO("elementId,name,dataType\n1,gatewayAddress,ipv4Address\n"),
                      enterprise=99999)
    assert mapping_for(document_mappings(registry), "gatewayAddress") == IP_WITH_KEYWORD
    assert mapping_for(document_mappings(default_registry()), "gatewayAddress") is None


def test_names_with_pattern_characters_match_only_themselves():
    registry = Registry([InformationElement("odd.name+(x)", 1, 99999, "string")])
    mappings = document_mappings(registry)
    assert mapping_for(mappings, "odd.name+(x)") == TEXT_WITH_KEYWORD
    assert mapping_for(mappings, "oddXname+(x)") is None
    assert mapping_for(mappings, "odd.nameee(x)") is None


def test_unknown_elements_are_mapped_as_keyword():
    mappings = document_mappings(default_registry())
    assert mapping_for(mappings, "en56506:id999") == {"type": "keyword", "ignore_above": 4096}


def test_rules_apply_below_ipfix_only():
    assert all(rule["path_match"] == "ipfix.*"
               for rule in rules(document_mappings(default_registry())).values())


def test_document_fields_are_mapped_explicitly():
    properties = document_mappings(default_registry())["properties"]
    assert properties["@timestamp"] == {"type": "date", "format": "strict_date_optional_time"}
    assert properties["host"] == IP_WITH_KEYWORD
    assert properties["type"]["type"] == properties["@version"]["type"] == "keyword"
    assert properties["ipfix"]["properties"] == {"version": {"type": "integer"},
                                                 "flowset_id": {"type": "integer"}}


def test_strings_that_look_like_dates_are_not_detected_as_dates():
    assert document_mappings(default_registry())["date_detection"] is False


def test_the_same_registry_gives_the_same_template():
    assert index_template(default_registry(), "flow-%Y.%m.%d") == index_template(
        default_registry(), "flow-%Y.%m.%d")


def test_the_template_covers_the_index_pattern():
    template = index_template(default_registry(), "flow-%Y.%m.%d")
    assert template["index_patterns"] == ["flow-*"]
    assert template["template"]["mappings"] == document_mappings(default_registry())


@pytest.mark.parametrize("index, patterns", [
    ("flow-%Y.%m.%d", ["flow-*"]),
    ("flow-%Y.%m.%d-%H", ["flow-*"]),
    ("flows", ["flows"]),
    ("flow%%-%Y", ["flow%-*"]),
])
def test_index_pattern_is_the_text_before_the_first_directive_and_a_star(index, patterns):
    assert index_patterns_for(index) == patterns


def test_an_index_pattern_starting_with_a_directive_is_refused():
    with pytest.raises(ValueError, match="literal text"):
        index_patterns_for("%Y-flow")

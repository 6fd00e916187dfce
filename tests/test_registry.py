"""The information-element registry: what each (enterprise, id) means, and how to find it."""

from __future__ import annotations

import csv
import io
import time
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipfix_antrea.registry import (
    ABSTRACT_TYPES,
    ANTREA_ENTERPRISE,
    ANTREA_LEGACY_ENTERPRISE,
    IANA_ENTERPRISE,
    NON_REVERSIBLE_IDS,
    REVERSE_ENTERPRISE,
    InformationElement,
    Registry,
    default_registry,
)


def packaged_rows(filename: str) -> list[dict[str, str]]:
    data = resources.files("ipfix_antrea").joinpath("data").joinpath(filename)
    with data.open("r", encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


def in_enterprise(reg: Registry, enterprise: int) -> list[InformationElement]:
    return [ie for ie in reg if ie.enterprise == enterprise]


@pytest.fixture
def reg() -> Registry:
    return default_registry()


# -- the default registry: contents -------------------------------------------------------------


def test_default_registry_has_every_iana_element_of_the_packaged_csv(reg):
    rows = packaged_rows("iana.csv")
    assert len(in_enterprise(reg, IANA_ENTERPRISE)) == len(rows)
    for row in rows:
        ie = reg.get(IANA_ENTERPRISE, int(row["elementId"]))
        assert (ie.name, ie.data_type) == (row["name"], row["dataType"])


def test_iana_elements_carry_semantics_units_and_status(reg):
    ie = reg.by_name("octetDeltaCount")
    assert ie.key == (0, 1)
    assert (ie.data_type, ie.semantics, ie.units, ie.status) == (
        "unsigned64",
        "deltaCounter",
        "octets",
        "current",
    )
    assert ie.length is None  # IANA elements take their length from the type


def test_default_registry_has_the_73_antrea_elements(reg):
    antrea = in_enterprise(reg, ANTREA_ENTERPRISE)
    assert len(antrea) == 73
    assert {ie.element_id for ie in antrea} == set(range(100, 173))


def test_default_registry_has_the_13_legacy_antrea_elements(reg):
    legacy = in_enterprise(reg, ANTREA_LEGACY_ENTERPRISE)
    assert len(legacy) == 13
    assert {ie.element_id for ie in legacy} == set(range(100, 113))


def test_antrea_elements_keep_their_encoded_length(reg):
    assert reg.by_name("sourcePodName").length == 65535
    assert reg.by_name("destinationClusterIPv4").length == 4
    uuid = reg.get(ANTREA_ENTERPRISE, 159)
    assert (uuid.name, uuid.data_type, uuid.length) == ("sourcePodUUID", "octetArray", 16)


def test_reverse_elements_mirror_iana_id_type_and_length(reg):
    forward = reg.by_name("octetDeltaCount")
    reverse = reg.get(REVERSE_ENTERPRISE, 1)
    assert reverse.name == "reverseOctetDeltaCount"
    assert (reverse.element_id, reverse.data_type, reverse.length) == (1, "unsigned64", None)
    assert (reverse.semantics, reverse.units) == (forward.semantics, forward.units)
    assert reg.by_name("reverseOctetDeltaCount") is reverse


@pytest.mark.parametrize(
    "name",
    [
        "octetDeltaCount",
        "packetDeltaCount",
        "octetTotalCount",
        "packetTotalCount",
        "flowStartMilliseconds",
        "tcpControlBits",
        "sourceIPv4Address",
        "basicList",
    ],
)
def test_reverse_element_exists_for_reversible_iana_element(reg, name):
    forward = reg.by_name(name)
    reverse = reg.get(REVERSE_ENTERPRISE, forward.element_id)
    assert reverse is not None
    assert reverse.name == "reverse" + name[0].upper() + name[1:]


@pytest.mark.parametrize(
    "name",
    [
        "observationDomainId",
        "templateId",
        "paddingOctets",
        "flowId",
        "biflowDirection",
        "exporterIPv4Address",
        "collectorTransportPort",
        "exportedOctetTotalCount",
        "notSentFlowTotalCount",
        "commonPropertiesId",
        "flowKeyIndicator",
    ],
)
def test_no_reverse_element_for_rfc5103_non_reversible_element(reg, name):
    forward = reg.by_name(name)
    assert forward.element_id in NON_REVERSIBLE_IDS
    assert reg.get(REVERSE_ENTERPRISE, forward.element_id) is None
    assert ("reverse" + name[0].upper() + name[1:]) not in reg


def test_reverse_elements_are_all_reversible_iana_elements_and_nothing_else(reg):
    iana_ids = {ie.element_id for ie in in_enterprise(reg, IANA_ENTERPRISE)}
    reverse_ids = {ie.element_id for ie in in_enterprise(reg, REVERSE_ENTERPRISE)}
    assert reverse_ids == iana_ids - NON_REVERSIBLE_IDS
    assert iana_ids >= NON_REVERSIBLE_IDS  # every RFC 5103 §6.1 element is in the IANA table


def test_reverse_name_capitalises_only_the_first_letter(reg):
    assert reg.get(REVERSE_ENTERPRISE, 236).name == "reverseVRFname"
    assert reg.get(REVERSE_ENTERPRISE, 8).name == "reverseSourceIPv4Address"


def test_every_default_element_has_a_known_abstract_type(reg):
    assert {ie.data_type for ie in reg} <= ABSTRACT_TYPES


def test_default_registry_names_resolve_to_distinct_elements_except_legacy_duplicates(reg):
    legacy_names = {ie.name for ie in in_enterprise(reg, ANTREA_LEGACY_ENTERPRISE)}
    for ie in reg:
        winner = reg.by_name(ie.name)
        assert winner is ie or (ie.enterprise == ANTREA_LEGACY_ENTERPRISE and ie.name in legacy_names)


# -- legacy numbering ---------------------------------------------------------------------------


def test_legacy_and_current_antrea_tables_differ_from_id_106(reg):
    assert reg.get(ANTREA_LEGACY_ENTERPRISE, 106).name == "destinationClusterIP"
    assert reg.get(ANTREA_LEGACY_ENTERPRISE, 106).data_type == "ipv4Address"
    assert reg.get(ANTREA_ENTERPRISE, 106).name == "destinationClusterIPv4"
    assert reg.get(ANTREA_LEGACY_ENTERPRISE, 107).name == "destinationServicePort"
    assert reg.get(ANTREA_ENTERPRISE, 107).name == "destinationClusterIPv6"


def test_names_shared_with_the_legacy_table_resolve_to_enterprise_56506(reg):
    assert reg.by_name("sourcePodName").key == (ANTREA_ENTERPRISE, 101)
    assert reg.by_name("destinationServicePort").key == (ANTREA_ENTERPRISE, 108)


def test_names_only_in_the_legacy_table_resolve_to_enterprise_55829(reg):
    assert reg.by_name("destinationClusterIP").key == (ANTREA_LEGACY_ENTERPRISE, 106)


# -- unknown elements ---------------------------------------------------------------------------


def test_get_returns_none_for_unknown_element(reg):
    assert reg.get(0, 999) is None
    assert reg.get(ANTREA_ENTERPRISE, 999) is None


def test_lookup_names_unknown_element_en_enterprise_id(reg):
    ie = reg.lookup(ANTREA_ENTERPRISE, 999)
    assert ie.name == "en56506:id999"
    assert ie.key == (56506, 999)
    assert ie.data_type == "octetArray"
    assert ie.length is None


def test_lookup_returns_the_same_object_for_the_same_unknown_element(reg):
    assert reg.lookup(0, 999) is reg.lookup(0, 999)


def test_lookup_of_known_element_is_get(reg):
    assert reg.lookup(0, 8) is reg.get(0, 8)


def test_unknown_elements_from_lookup_are_not_added(reg):
    before = len(reg)
    reg.lookup(12345, 1)
    assert len(reg) == before
    assert (12345, 1) not in reg
    assert "en12345:id1" not in reg


def test_by_name_resolves_en_id_form_of_unknown_element(reg):
    ie = reg.by_name("en99:id7")
    assert ie.key == (99, 7)
    assert ie is reg.lookup(99, 7)


def test_by_name_resolves_en_id_form_of_known_element(reg):
    assert reg.by_name("en56506:id101") is reg.by_name("sourcePodName")
    assert reg.by_name("en0:id1") is reg.by_name("octetDeltaCount")


def test_by_name_unknown_raises_key_error_suggesting_close_names(reg):
    with pytest.raises(KeyError, match="sourcePodNam") as info:
        reg.by_name("sourcePodNam")
    assert "did you mean" in str(info.value)
    assert "'sourcePodName'" in str(info.value)


def test_by_name_en_id_form_out_of_range_raises_key_error(reg):
    with pytest.raises(KeyError):
        reg.by_name("en0:id40000")


# -- containment, iteration ---------------------------------------------------------------------


def test_contains_accepts_keys_names_and_elements(reg):
    assert (0, 8) in reg
    assert (0, 999) not in reg
    assert "sourceIPv4Address" in reg
    assert "en0:id8" in reg
    assert "noSuchElement" not in reg
    assert reg.get(0, 8) in reg
    assert InformationElement("sourceIPv4Address", 8, data_type="string") not in reg


def test_iteration_yields_each_element_once_and_len_counts_them(reg):
    elements = list(reg)
    assert len(elements) == len(reg)
    assert len({ie.key for ie in elements}) == len(reg)


# -- adding at run time -------------------------------------------------------------------------


def test_add_makes_element_reachable_by_key_and_name(reg):
    ie = InformationElement("myCounter", 1, enterprise=99999, data_type="unsigned64")
    reg.add(ie)
    assert reg.get(99999, 1) is ie
    assert reg.by_name("myCounter") is ie
    assert reg.lookup(99999, 1) is ie


def test_add_replaces_element_with_same_key(reg):
    before = len(reg)
    ie = InformationElement("podNameRenamed", 101, enterprise=ANTREA_ENTERPRISE, data_type="string")
    reg.add(ie)
    assert len(reg) == before
    assert reg.get(ANTREA_ENTERPRISE, 101) is ie
    assert reg.by_name("podNameRenamed") is ie


def test_replaced_name_falls_back_to_a_remaining_namesake(reg):
    reg.add(InformationElement("podNameRenamed", 101, enterprise=ANTREA_ENTERPRISE))
    assert reg.by_name("sourcePodName").key == (ANTREA_LEGACY_ENTERPRISE, 101)


def test_replaced_name_without_namesake_disappears(reg):
    reg.add(InformationElement("renamed", 1, enterprise=IANA_ENTERPRISE, data_type="unsigned64"))
    assert "octetDeltaCount" not in reg
    with pytest.raises(KeyError):
        reg.by_name("octetDeltaCount")


def test_add_points_name_to_the_newest_element(reg):
    ie = InformationElement("sourcePodName", 500, enterprise=99999, data_type="string")
    reg.add(ie)
    assert reg.by_name("sourcePodName") is ie
    assert reg.get(ANTREA_ENTERPRISE, 101).name == "sourcePodName"


def test_add_supersedes_a_cached_unknown_element(reg):
    assert reg.lookup(99999, 5).name == "en99999:id5"
    ie = InformationElement("late", 5, enterprise=99999, data_type="unsigned32")
    reg.add(ie)
    assert reg.lookup(99999, 5) is ie


def test_add_rejects_non_elements():
    with pytest.raises(TypeError):
        Registry().add(("x", 1))  # type: ignore[arg-type]


def test_registry_starts_from_given_elements():
    a = InformationElement("a", 1, enterprise=7)
    b = InformationElement("b", 2, enterprise=7)
    reg = Registry([a, b])
    assert list(reg) == [a, b]
    assert len(Registry()) == 0


# -- independence -------------------------------------------------------------------------------


def test_default_registry_returns_independent_copies():
    first, second = default_registry(), default_registry()
    assert first is not second
    first.add(InformationElement("onlyInFirst", 1, enterprise=99999))
    assert "onlyInFirst" not in second
    assert "onlyInFirst" not in default_registry()


def test_copy_is_independent_of_the_original(reg):
    clone = reg.copy()
    clone.add(InformationElement("onlyInClone", 1, enterprise=99999))
    clone.add(InformationElement("replacedInClone", 8))
    assert "onlyInClone" not in reg
    assert reg.get(0, 8).name == "sourceIPv4Address"
    assert clone.get(0, 8).name == "replacedInClone"
    assert len(clone) == len(reg) + 1


def test_copy_shares_the_frozen_elements(reg):
    clone = reg.copy()
    assert clone.get(0, 8) is reg.get(0, 8)


def test_default_registry_is_fast_to_obtain():
    default_registry()  # the master is built once
    start = time.perf_counter()
    for _ in range(10):
        default_registry()
    assert (time.perf_counter() - start) / 10 < 0.005


# -- load_csv -----------------------------------------------------------------------------------


def test_load_csv_from_a_file_path(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text(
        "elementId,name,dataType,length,enterprise\n"
        "1,myCounter,unsigned64,8,99999\n"
        "2,myLabel,string,65535,99999\n",
        encoding="utf-8",
    )
    reg = Registry()
    assert reg.load_csv(path) == 2
    assert reg.load_csv(str(path)) == 2  # str paths too; same keys, so replaced
    assert len(reg) == 2
    assert reg.by_name("myCounter") == InformationElement(
        "myCounter", 1, enterprise=99999, data_type="unsigned64", length=8
    )


def test_load_csv_from_a_text_stream():
    stream = io.StringIO(
        "elementId,name,dataType,dataTypeSemantics,units,status\n"
        "1,octetDeltaCount,unsigned64,deltaCounter,octets,current\n"
    )
    reg = Registry()
    assert reg.load_csv(stream) == 1
    ie = reg.get(0, 1)
    assert (ie.name, ie.semantics, ie.units, ie.status, ie.length) == (
        "octetDeltaCount",
        "deltaCounter",
        "octets",
        "current",
        None,
    )


def test_load_csv_without_enterprise_column_means_iana():
    reg = Registry()
    reg.load_csv(io.StringIO("elementId,name,dataType\n8,sourceIPv4Address,ipv4Address\n"))
    assert reg.get(IANA_ENTERPRISE, 8).name == "sourceIPv4Address"


def test_load_csv_enterprise_argument_fills_a_missing_column():
    reg = Registry()
    reg.load_csv(io.StringIO("elementId,name,dataType\n7,x,unsigned8\n"), enterprise=42)
    assert reg.get(42, 7).name == "x"


def test_load_csv_enterprise_argument_overrides_the_column():
    reg = Registry()
    reg.load_csv(io.StringIO("elementId,name,dataType,enterprise\n7,x,unsigned8,1\n"), enterprise=42)
    assert reg.get(42, 7).name == "x"
    assert reg.get(1, 7) is None


def test_load_csv_adds_to_existing_elements(reg):
    before = len(reg)
    added = reg.load_csv(io.StringIO("elementId,name,dataType\n1,a,string\n2,b,string\n"), enterprise=99999)
    assert added == 2
    assert len(reg) == before + 2


def test_load_csv_ignores_extra_columns_and_blank_optional_cells():
    reg = Registry()
    reg.load_csv(io.StringIO("elementId,name,dataType,length,description\n3,x,string,,free text\n"))
    assert reg.get(0, 3).length is None


def test_load_csv_bad_row_names_the_line_and_adds_nothing():
    reg = Registry()
    stream = io.StringIO("elementId,name,dataType\n1,good,unsigned8\ntwo,bad,unsigned8\n")
    with pytest.raises(ValueError, match=r"line 3: elementId 'two' is not an integer"):
        reg.load_csv(stream)
    assert len(reg) == 0


def test_load_csv_unknown_data_type_names_the_line_and_the_type():
    stream = io.StringIO("elementId,name,dataType\n1,a,unsigned8\n2,b,uint8\n")
    with pytest.raises(ValueError, match=r"line 3: .*'uint8'"):
        Registry().load_csv(stream)


def test_load_csv_error_names_the_file(tmp_path):
    path = tmp_path / "broken.csv"
    path.write_text("elementId,name,dataType\n1,,string\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken\.csv, line 2: .*name"):
        Registry().load_csv(path)


def test_load_csv_rejects_rows_with_too_many_cells():
    with pytest.raises(ValueError, match="line 2"):
        Registry().load_csv(io.StringIO("elementId,name,dataType\n1,a,string,extra\n"))


def test_load_csv_requires_the_three_key_columns():
    with pytest.raises(ValueError, match="dataType"):
        Registry().load_csv(io.StringIO("elementId,name\n1,a\n"))


# -- InformationElement -------------------------------------------------------------------------


def test_information_element_defaults():
    ie = InformationElement("x", 1)
    assert (ie.enterprise, ie.data_type, ie.semantics, ie.units, ie.status, ie.length) == (
        0,
        "octetArray",
        "",
        "",
        "",
        None,
    )
    assert ie.key == (0, 1)


def test_information_element_is_frozen_and_hashable():
    ie = InformationElement("x", 1)
    with pytest.raises(AttributeError):
        ie.name = "y"  # type: ignore[misc]
    assert {ie, InformationElement("x", 1)} == {ie}


def test_information_element_rejects_unknown_data_type():
    with pytest.raises(ValueError, match=r"'x'.*unknown data type 'uint64'"):
        InformationElement("x", 1, data_type="uint64")


@pytest.mark.parametrize("data_type", sorted(ABSTRACT_TYPES))
def test_information_element_accepts_every_abstract_type(data_type):
    assert InformationElement("x", 1, data_type=data_type).data_type == data_type


def test_abstract_types_are_those_of_rfc7011_and_rfc6313():
    assert len(ABSTRACT_TYPES) == 23
    assert {"unsigned64", "dateTimeNanoseconds", "subTemplateMultiList"} <= ABSTRACT_TYPES


@pytest.mark.parametrize(
    "kwargs",
    [
        {"element_id": -1},
        {"element_id": 0x8000},
        {"enterprise": -1},
        {"enterprise": 2**32},
        {"length": 65536},
        {"length": -1},
        {"element_id": True},
    ],
)
def test_information_element_rejects_numbers_out_of_range(kwargs):
    args = {"name": "x", "element_id": 1} | kwargs
    with pytest.raises(ValueError):
        InformationElement(**args)


def test_information_element_rejects_empty_name():
    with pytest.raises(ValueError, match="name"):
        InformationElement("", 1)


def test_non_reversible_ids_are_the_elements_listed_in_rfc5103_section_6_1(reg):
    rfc5103_non_reversible = {
        # identifiers
        "flowId",
        "templateId",
        "observationDomainId",
        "commonPropertiesId",
        # metering and exporting process configuration
        "exporterIPv4Address",
        "exporterIPv6Address",
        "exporterTransportPort",
        "exportInterface",
        "exportProtocolVersion",
        "exportTransportProtocol",
        "collectorIPv4Address",
        "collectorIPv6Address",
        "collectorTransportPort",
        "flowKeyIndicator",
        # metering and exporting process statistics
        "exportedMessageTotalCount",
        "exportedOctetTotalCount",
        "exportedFlowRecordTotalCount",
        "observedFlowTotalCount",
        "ignoredPacketTotalCount",
        "ignoredOctetTotalCount",
        "notSentFlowTotalCount",
        "notSentPacketTotalCount",
        "notSentOctetTotalCount",
        # miscellaneous
        "paddingOctets",
        "biflowDirection",
    }
    assert {reg.get(IANA_ENTERPRISE, i).name for i in NON_REVERSIBLE_IDS} == rfc5103_non_reversible


element_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,30}", fullmatch=True)
elements = st.builds(
    InformationElement,
    name=element_names,
    element_id=st.integers(0, 0x7FFF),
    enterprise=st.integers(0, 2**32 - 1),
    data_type=st.sampled_from(sorted(ABSTRACT_TYPES)),
    semantics=st.sampled_from(["", "deltaCounter", "identifier", "flags"]),
    units=st.sampled_from(["", "octets", "label stack entries"]),
    status=st.sampled_from(["", "current", "deprecated"]),
    length=st.none() | st.integers(0, 65535),
)


@given(st.lists(elements, max_size=20, unique_by=lambda ie: ie.key))
def test_load_csv_reads_back_what_a_csv_writer_wrote(written):
    columns = [
        "elementId",
        "name",
        "dataType",
        "dataTypeSemantics",
        "units",
        "status",
        "length",
        "enterprise",
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for ie in written:
        writer.writerow(
            [
                ie.element_id,
                ie.name,
                ie.data_type,
                ie.semantics,
                ie.units,
                ie.status,
                "" if ie.length is None else ie.length,
                ie.enterprise,
            ]
        )
    buffer.seek(0)
    reg = Registry()
    assert reg.load_csv(buffer) == len(written)
    assert list(reg) == written


def test_unknown_elements_beyond_the_cache_limit_are_made_afresh_and_not_kept(monkeypatch):
    from ipfix_antrea import registry as registry_module

    monkeypatch.setattr(registry_module, "MAX_UNKNOWN_CACHED", 3)
    reg = default_registry()
    cached = [reg.lookup(4242, i) for i in range(3)]
    assert all(reg.lookup(4242, i) is ie for i, ie in enumerate(cached))
    fresh = reg.lookup(4242, 99)
    assert fresh == reg.lookup(4242, 99) and fresh is not reg.lookup(4242, 99)
    assert fresh.name == "en4242:id99" and fresh.data_type == "octetArray"
    assert len(reg._unknown) == 3

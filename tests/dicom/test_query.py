"""Query/Retrieve C-FIND over real associations (PS3.4 C.2.2.2, C.4.1; SPEC "DICOM services").

One archive per index backend is filled once per module through C-STORE; every case then
sends a C-FIND on a shared association and compares the matches with what was stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage

from tests.dicom import scu
from tests.dicom.catalog import STUDIES, Catalog, build

UNIQUE = {"PATIENT": "PatientID", "STUDY": "StudyInstanceUID", "SERIES": "SeriesInstanceUID",
          "IMAGE": "SOPInstanceUID"}


@pytest.fixture(scope="module")
def catalog(module_listener: Any) -> Catalog:
    datasets, cat = build()
    assert scu.store_datasets(module_listener, datasets) == [0x0000] * len(datasets)
    cat.listener = module_listener
    return cat


@pytest.fixture(scope="module")
def peer(catalog: Catalog) -> Iterator[scu.Peer]:
    with scu.Peer(catalog.listener) as p:
        yield p


Keys = Callable[[Catalog], dict[str, str]]
Expect = Callable[[Catalog], set[str]]


def _c(keys: dict[str, str] | Keys, expect: set[str] | Expect) -> tuple[Keys, Expect]:
    k = keys if callable(keys) else (lambda c, keys=keys: dict(keys))
    e = expect if callable(expect) else (lambda c, expect=expect: set(expect))
    return k, e


ALL_PATIENTS = {"PID001", "PID002", "PCT%1", "PCTX1"}

PATIENT_CASES: dict[str, tuple[Keys, Expect]] = {
    "single-value": _c({"PatientID": "PID001"}, {"PID001"}),
    "wildcard-star": _c({"PatientName": "DOE*", "PatientID": ""}, {"PID001", "PID002"}),
    "wildcard-question": _c({"PatientName": "DOE^J?NE", "PatientID": ""}, {"PID001"}),
    "name-case-insensitive-wildcard": _c({"PatientName": "smith*", "PatientID": ""},
                                         {"PCT%1", "PCTX1"}),
    "name-case-insensitive-wildcard-2": _c({"PatientName": "smith^a*", "PatientID": ""},
                                           {"PCT%1"}),
    "literal-percent": _c({"PatientID": "PCT%1"}, {"PCT%1"}),
    "literal-percent-then-star": _c({"PatientID": "PCT%*"}, {"PCT%1"}),
    "literal-underscore": _c({"PatientID": "PCT_1"}, set()),
    "literal-underscore-then-star": _c({"PatientID": "PC_*"}, set()),
    "date-range": _c({"PatientBirthDate": "19600101-19751231", "PatientID": ""}, {"PID001"}),
    "date-range-open-low": _c({"PatientBirthDate": "-19800202", "PatientID": ""},
                              {"PID001", "PID002"}),
    "date-range-open-high": _c({"PatientBirthDate": "19850101-", "PatientID": ""},
                               {"PCT%1", "PCTX1"}),
    "universal-empty": _c({"PatientID": ""}, ALL_PATIENTS),
    "universal-star": _c({"PatientName": "*", "PatientID": ""}, ALL_PATIENTS),
}


def _studies(*labels: str) -> Expect:
    return lambda c: {c.studies[label] for label in labels}


def _series(*labels: str) -> Expect:
    return lambda c: {c.series[label] for label in labels}


STUDY_CASES: dict[str, tuple[Keys, Expect]] = {
    "uid-single-value": _c(lambda c: {"StudyInstanceUID": c.studies["S2"]}, _studies("S2")),
    "uid-list": _c(lambda c: {"StudyInstanceUID": f"{c.studies['S1']}\\{c.studies['S3']}"},
                   _studies("S1", "S3")),
    "date-single-value": _c({"StudyDate": "20250115", "StudyInstanceUID": ""}, _studies("S1")),
    "date-range": _c({"StudyDate": "20250101-20250131", "StudyInstanceUID": ""},
                     _studies("S1", "S2")),
    "date-range-open-low": _c({"StudyDate": "-20250115", "StudyInstanceUID": ""},
                              _studies("S3", "S1")),
    "date-range-open-high": _c({"StudyDate": "20250131-", "StudyInstanceUID": ""},
                               _studies("S2", "S4", "S5")),
    "wildcard-question": _c({"AccessionNumber": "ACC00?", "StudyInstanceUID": ""},
                            _studies("S1", "S2", "S3")),
    "wildcard-star": _c({"AccessionNumber": "ACC*", "StudyInstanceUID": ""},
                        _studies("S1", "S2", "S3", "S4", "S5")),
    "literal-underscore": _c({"AccessionNumber": "ACC_004", "StudyInstanceUID": ""},
                             _studies("S4")),
    "literal-underscore-then-star": _c({"AccessionNumber": "ACC_*", "StudyInstanceUID": ""},
                                       _studies("S4")),
    "literal-percent-then-star": _c({"PatientID": "PCT%*", "StudyInstanceUID": ""},
                                    _studies("S4")),
    "patient-id-single-value": _c({"PatientID": "PID001", "StudyInstanceUID": ""},
                                  _studies("S1", "S2")),
    "name-wildcard": _c({"PatientName": "DOE*", "StudyInstanceUID": ""},
                        _studies("S1", "S2", "S3")),
    "name-case-insensitive-wildcard": _c({"PatientName": "doe^j?hn", "StudyInstanceUID": ""},
                                         _studies("S3")),
    "description-wildcard": _c({"StudyDescription": "K*", "StudyInstanceUID": ""},
                               _studies("S4", "S5")),
    "modalities-in-study": _c({"ModalitiesInStudy": "MR", "StudyInstanceUID": ""},
                              _studies("S2", "S3")),
    "combined-keys": _c({"PatientName": "DOE*", "StudyDate": "20250101-",
                         "StudyInstanceUID": ""}, _studies("S1", "S2")),
    "no-match": _c({"AccessionNumber": "NOPE", "StudyInstanceUID": ""}, set()),
    "universal-empty": _c({"StudyInstanceUID": ""}, _studies("S1", "S2", "S3", "S4", "S5")),
    "universal-star": _c({"AccessionNumber": "*", "StudyInstanceUID": ""},
                         _studies("S1", "S2", "S3", "S4", "S5")),
}

SERIES_CASES: dict[str, tuple[Keys, Expect]] = {
    "of-one-study": _c(lambda c: {"StudyInstanceUID": c.studies["S1"], "SeriesInstanceUID": ""},
                       _series("S1a", "S1b")),
    "uid-single-value": _c(lambda c: {"StudyInstanceUID": c.studies["S3"],
                                      "SeriesInstanceUID": c.series["S3mr"]},
                           _series("S3mr")),
    "uid-list": _c(lambda c: {"SeriesInstanceUID": f"{c.series['S1b']}\\{c.series['S3ct']}"},
                   _series("S1b", "S3ct")),
    "modality-single-value": _c(lambda c: {"StudyInstanceUID": c.studies["S3"],
                                           "Modality": "MR", "SeriesInstanceUID": ""},
                                _series("S3mr")),
    "modality-wildcard": _c({"Modality": "M?", "SeriesInstanceUID": ""},
                            _series("S2a", "S3mr")),
    "name-wildcard": _c({"PatientName": "DOE*", "SeriesInstanceUID": ""},
                        _series("S1a", "S1b", "S2a", "S3ct", "S3mr")),
    "name-case-insensitive-wildcard": _c({"PatientName": "doe^j*", "Modality": "MR",
                                          "SeriesInstanceUID": ""}, _series("S2a", "S3mr")),
    "study-date-range": _c({"StudyDate": "20250101-20250131", "SeriesInstanceUID": ""},
                           _series("S1a", "S1b", "S2a")),
    "universal": _c({"SeriesInstanceUID": ""},
                    _series("S1a", "S1b", "S2a", "S3ct", "S3mr", "S4a", "S5a")),
}

IMAGE_CASES: dict[str, tuple[Keys, Expect]] = {
    "of-one-series": _c(lambda c: {"StudyInstanceUID": c.studies["S1"],
                                   "SeriesInstanceUID": c.series["S1a"], "SOPInstanceUID": ""},
                        lambda c: c.sops("S1a")),
    "uid-single-value": _c(lambda c: {"SOPInstanceUID": c.instances["S2a"][1]},
                           lambda c: {c.instances["S2a"][1]}),
    "uid-list": _c(lambda c: {"SOPInstanceUID":
                              f"{c.instances['S2a'][0]}\\{c.instances['S5a'][0]}"},
                   lambda c: {c.instances["S2a"][0], c.instances["S5a"][0]}),
    "name-wildcard": _c({"PatientName": "DOE^JA*", "SOPInstanceUID": ""},
                        lambda c: c.sops("S1a", "S1b", "S2a")),
    "name-case-insensitive-wildcard-and-date-range": _c(
        {"PatientName": "doe*", "StudyDate": "-20250115", "SOPInstanceUID": ""},
        lambda c: c.sops("S1a", "S1b", "S3ct", "S3mr")),
    "literal-underscore-then-star": _c({"AccessionNumber": "ACC_*", "SOPInstanceUID": ""},
                                       lambda c: c.sops("S4a")),
    "universal": _c({"SOPInstanceUID": ""}, lambda c: c.all_sops()),
}


def _params(level: str, cases: dict[str, tuple[Keys, Expect]],
            models: tuple[str, ...]) -> list[Any]:
    return [pytest.param(model, level, *case, id=f"{model}-root-{level}-{name}")
            for model in models for name, case in cases.items()]


@pytest.mark.parametrize(("model", "level", "keys", "expect"), [
    *_params("PATIENT", PATIENT_CASES, ("patient",)),
    *_params("STUDY", STUDY_CASES, ("patient", "study")),
    *_params("SERIES", SERIES_CASES, ("patient", "study")),
    *_params("IMAGE", IMAGE_CASES, ("patient", "study")),
])
def test_matching(catalog: Catalog, peer: scu.Peer, model: str, level: str, keys: Keys,
                  expect: Expect) -> None:
    request = keys(catalog)
    result = peer.find(scu.query(level, **request), model)
    assert f"0x{result.final:04X}" == "0x0000"
    assert all(s in scu.PENDING for s in result.statuses[:-1])
    unique = UNIQUE[level]
    assert sorted(str(m.get(unique)) for m in result.matches) == sorted(expect(catalog))
    for match in result.matches:
        assert match.QueryRetrieveLevel == level
        missing = [k for k in request if k not in match]
        assert missing == [], f"requested keys not returned: {missing}"


# -- return keys ---------------------------------------------------------------------------

def _value(ds: Dataset, keyword: str) -> Any:
    assert keyword in ds, f"{keyword} was requested but not returned"
    return ds[keyword].value


@pytest.mark.parametrize("model", ["patient", "study"])
def test_study_level_return_keys(catalog: Catalog, peer: scu.Peer, model: str) -> None:
    study_uid = catalog.studies["S3"]
    result = peer.find(scu.query(
        "STUDY", StudyInstanceUID=study_uid, PatientName="", PatientID="", PatientBirthDate="",
        PatientSex="", StudyDate="", StudyTime="", AccessionNumber="", StudyID="",
        StudyDescription="", ReferringPhysicianName="", ModalitiesInStudy="",
        NumberOfStudyRelatedSeries="", NumberOfStudyRelatedInstances="",
        PatientComments="", OtherPatientIDs=""), model)
    assert result.final == 0x0000
    assert len(result.matches) == 1
    m = result.matches[0]
    assert _value(m, "StudyInstanceUID") == study_uid
    assert str(_value(m, "PatientName")) == "DOE^JOHN"
    assert _value(m, "PatientID") == "PID002"
    assert _value(m, "PatientBirthDate") == "19800202"
    assert _value(m, "PatientSex") == "M"
    assert _value(m, "StudyDate") == "20241231"
    assert str(_value(m, "StudyTime")).startswith("231500")
    assert _value(m, "AccessionNumber") == "ACC003"
    assert _value(m, "StudyID") == "1"
    assert _value(m, "StudyDescription") == "ABDOMEN"
    assert str(_value(m, "ReferringPhysicianName")) == "WHO^DR"
    modalities = _value(m, "ModalitiesInStudy")
    assert sorted([modalities] if isinstance(modalities, str) else modalities) == ["CT", "MR"]
    assert int(_value(m, "NumberOfStudyRelatedSeries")) == 2
    assert int(_value(m, "NumberOfStudyRelatedInstances")) == 3
    # Requested but unknown: returned, zero length (PS3.4 C.2.2.1.2 / C.4.1.1.3.2).
    assert _value(m, "PatientComments") in ("", None)
    assert _value(m, "OtherPatientIDs") in ("", None)


@pytest.mark.parametrize("model", ["patient", "study"])
def test_study_level_counts_for_every_study(catalog: Catalog, peer: scu.Peer,
                                            model: str) -> None:
    result = peer.find(scu.query("STUDY", StudyInstanceUID="", ModalitiesInStudy="",
                                 NumberOfStudyRelatedInstances="",
                                 NumberOfStudyRelatedSeries=""), model)
    assert result.final == 0x0000
    got = {}
    for m in result.matches:
        modalities = m.ModalitiesInStudy
        modalities = [modalities] if isinstance(modalities, str) else list(modalities)
        got[m.StudyInstanceUID] = (sorted(modalities), int(m.NumberOfStudyRelatedSeries),
                                   int(m.NumberOfStudyRelatedInstances))
    expected = {}
    for label, (_, _, _, _, _, series) in STUDIES.items():
        expected[catalog.studies[label]] = (sorted({mod for _, mod, _ in series}), len(series),
                                            sum(n for _, _, n in series))
    assert got == expected


def test_patient_level_return_keys(catalog: Catalog, peer: scu.Peer) -> None:
    result = peer.find(scu.query(
        "PATIENT", PatientID="PID001", PatientName="", PatientBirthDate="", PatientSex="",
        NumberOfPatientRelatedStudies="", NumberOfPatientRelatedSeries="",
        NumberOfPatientRelatedInstances="", PatientComments=""), "patient")
    assert result.final == 0x0000
    assert len(result.matches) == 1
    m = result.matches[0]
    assert _value(m, "PatientID") == "PID001"
    assert str(_value(m, "PatientName")) == "DOE^JANE"
    assert _value(m, "PatientBirthDate") == "19700101"
    assert _value(m, "PatientSex") == "F"
    assert int(_value(m, "NumberOfPatientRelatedStudies")) == 2
    assert int(_value(m, "NumberOfPatientRelatedSeries")) == 3
    assert int(_value(m, "NumberOfPatientRelatedInstances")) == 7
    assert _value(m, "PatientComments") in ("", None)


@pytest.mark.parametrize("model", ["patient", "study"])
def test_series_level_return_keys(catalog: Catalog, peer: scu.Peer, model: str) -> None:
    keys: dict[str, str] = {"StudyInstanceUID": catalog.studies["S1"]}
    if model == "patient":
        keys["PatientID"] = "PID001"
    result = peer.find(scu.query(
        "SERIES", **keys, SeriesInstanceUID="", Modality="", SeriesNumber="",
        SeriesDescription="", NumberOfSeriesRelatedInstances="", Manufacturer=""), model)
    assert result.final == 0x0000
    by_uid = {m.SeriesInstanceUID: m for m in result.matches}
    assert set(by_uid) == {catalog.series["S1a"], catalog.series["S1b"]}
    first, second = by_uid[catalog.series["S1a"]], by_uid[catalog.series["S1b"]]
    for m in (first, second):
        assert _value(m, "StudyInstanceUID") == catalog.studies["S1"]
        assert _value(m, "Modality") == "CT"
        assert int(_value(m, "NumberOfSeriesRelatedInstances")) == 2
        assert _value(m, "SeriesDescription") in ("", None)
    assert int(_value(first, "SeriesNumber")) == 1
    assert int(_value(second, "SeriesNumber")) == 2
    assert _value(first, "Manufacturer") == "ACME"  # not indexed: from the stored header
    assert _value(second, "Manufacturer") in ("", None)


@pytest.mark.parametrize("model", ["patient", "study"])
def test_image_level_return_keys(catalog: Catalog, peer: scu.Peer, model: str) -> None:
    keys = {"StudyInstanceUID": catalog.studies["S3"], "SeriesInstanceUID": catalog.series["S3mr"]}
    if model == "patient":
        keys["PatientID"] = "PID002"
    result = peer.find(scu.query("IMAGE", **keys, SOPInstanceUID="", SOPClassUID="",
                                 InstanceNumber="", Rows="", Columns="", ImageComments=""),
                       model)
    assert result.final == 0x0000
    assert sorted(m.SOPInstanceUID for m in result.matches) == sorted(catalog.sops("S3mr"))
    numbers = []
    for m in result.matches:
        for keyword, value in keys.items():
            assert _value(m, keyword) == value
        assert _value(m, "SOPClassUID") == CTImageStorage
        assert int(_value(m, "Rows")) == 8 and int(_value(m, "Columns")) == 8
        assert _value(m, "ImageComments") in ("", None)
        numbers.append(int(_value(m, "InstanceNumber")))
    assert sorted(numbers) == [1, 2]


# -- refusals and audit --------------------------------------------------------------------

def _is_failure(status: int) -> bool:
    return 0xA900 <= status <= 0xA9FF or 0xC000 <= status <= 0xCFFF


def test_study_root_has_no_patient_level(catalog: Catalog, peer: scu.Peer) -> None:
    result = peer.find(scu.query("PATIENT", PatientID="", PatientName=""), "study")
    assert _is_failure(result.final), f"0x{result.final:04X}"
    assert result.matches == []


@pytest.mark.parametrize("model", ["patient", "study"])
@pytest.mark.parametrize("level", [None, "", "FOO"], ids=["missing", "empty", "unknown"])
def test_missing_or_unknown_query_retrieve_level_is_refused(catalog: Catalog, peer: scu.Peer,
                                                            model: str,
                                                            level: str | None) -> None:
    identifier = Dataset()
    if level is not None:
        identifier.QueryRetrieveLevel = level
    identifier.PatientID = ""
    identifier.StudyInstanceUID = ""
    result = peer.find(identifier, model)
    assert _is_failure(result.final), f"0x{result.final:04X}"
    assert result.matches == []


def test_find_is_audited(catalog: Catalog) -> None:
    result = scu.find(catalog.listener, scu.query("STUDY", PatientID="PID002",
                                                  StudyInstanceUID=""),
                      ae_title="AUDITSCU")
    assert result.final == 0x0000 and len(result.matches) == 1
    services = catalog.listener.services
    services.audit.flush()
    events = [e for e in services.audit.events(action="query") if e.calling_ae == "AUDITSCU"]
    assert len(events) == 1
    event = events[0]
    assert event.channel == "dimse"
    assert event.called_ae == "PACS"
    assert event.address.startswith("127.0.0.1")
    assert event.patient_id == "PID002"

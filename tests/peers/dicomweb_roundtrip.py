"""A DICOMweb client against a running rtnode, with dicomweb-client (the
reference Python client) and pydicom as the judge of equality.

    dicomweb_roundtrip.py BASE_URL OPERATOR_TOKEN READ_TOKEN FILE...

Stores FILEs by STOW-RS (operator token), finds them by QIDO-RS and
retrieves every instance by WADO-RS (read token), as stored and transcoded
to Explicit VR Little Endian, and checks each retrieved data set element by
element against the file sent. Prints a JSON summary; any mismatch raises.
"""

import json
import sys

import pydicom
from dicomweb_client.api import DICOMwebClient

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"


def client(url, token):
    return DICOMwebClient(url=url, headers={"Authorization": f"Bearer {token}"})


def same(sent, got, what):
    tags_sent = set(sent.keys())
    tags_got = set(got.keys())
    if tags_sent != tags_got:
        raise AssertionError(
            f"{what}: tags differ: only sent {sorted(tags_sent - tags_got)}, "
            f"only got {sorted(tags_got - tags_sent)}"
        )
    for elem in sent:
        other = got[elem.tag]
        if elem.value != other.value:
            raise AssertionError(f"{what}: {elem.tag} {elem.keyword}: {elem.value!r} != {other.value!r}")


def main():
    url, op_token, read_token, *files = sys.argv[1:]
    sent = {}
    for f in files:
        ds = pydicom.dcmread(f)
        if ds.Modality == "CT" and int(ds.InstanceNumber) % 2 == 0:
            # Every other slice sent in Implicit VR Little Endian, so that
            # asking for Explicit VR Little Endian makes the node transcode.
            ds.file_meta.TransferSyntaxUID = IMPLICIT_LE
        sent[ds.SOPInstanceUID] = ds
    writer = client(url, op_token)
    reader = client(url, read_token)

    answer = writer.store_instances(datasets=list(sent.values()))
    referenced = answer.get("ReferencedSOPSequence", [])
    failed = answer.get("FailedSOPSequence", [])

    patient_id = next(iter(sent.values())).PatientID
    studies = reader.search_for_studies(search_filters={"PatientID": patient_id})
    by_name = reader.search_for_studies(search_filters={"PatientName": "*"}, limit=1)
    found = {}
    for study in studies:
        study_uid = study["0020000D"]["Value"][0]
        for series in reader.search_for_series(study_instance_uid=study_uid):
            series_uid = series["0020000E"]["Value"][0]
            for inst in reader.search_for_instances(
                study_instance_uid=study_uid, series_instance_uid=series_uid
            ):
                found[inst["00080018"]["Value"][0]] = (study_uid, series_uid)
    if set(found) != set(sent):
        raise AssertionError(f"QIDO-RS found {len(found)} of {len(sent)} instances")

    source_aes = set()
    stored_syntaxes = set()
    for sop, (study_uid, series_uid) in sorted(found.items()):
        got = reader.retrieve_instance(study_uid, series_uid, sop)
        same(sent[sop], got, f"{sop} as stored")
        source_aes.add(str(got.file_meta.get("SourceApplicationEntityTitle", "")).strip())
        stored_syntaxes.add(str(got.file_meta.TransferSyntaxUID))
        explicit = reader.retrieve_instance(
            study_uid, series_uid, sop, media_types=(("application/dicom", EXPLICIT_LE),)
        )
        if explicit.file_meta.TransferSyntaxUID != EXPLICIT_LE:
            raise AssertionError(f"{sop}: asked for {EXPLICIT_LE}, got {explicit.file_meta.TransferSyntaxUID}")
        same(sent[sop], explicit, f"{sop} in Explicit VR Little Endian")

    # A whole series in one multipart answer, and an instance's metadata.
    sop, (study_uid, series_uid) = sorted(found.items())[0]
    series = reader.retrieve_series(study_uid, series_uid)
    for ds in series:
        same(sent[ds.SOPInstanceUID], ds, f"{ds.SOPInstanceUID} in its series")
    meta = reader.retrieve_instance_metadata(study_uid, series_uid, sop)
    print(
        json.dumps(
            {
                "referenced": len(referenced),
                "failed": len(failed),
                "retrieve_urls": [r.get("RetrieveURL", "") for r in referenced][:1],
                "studies": len(studies),
                "studies_by_name_limit_1": len(by_name),
                "found": len(found),
                "retrieved_equal": len(found),
                "series_retrieved": len(series),
                "source_aes": sorted(source_aes),
                "stored_syntaxes": sorted(stored_syntaxes),
                "metadata_patient_id": meta["00100020"]["Value"][0],
                "metadata_sop": meta["00080018"]["Value"][0],
                "patient_id": patient_id,
            }
        )
    )


if __name__ == "__main__":
    main()

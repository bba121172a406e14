"""A storage SCP that answers every C-STORE with one fixed status: the test
peer for rtnode's outbound queue (a destination that refuses with A9xx or
Cxxx must give a dead letter at once; A7xx must be retried; B-range is a
success with a warning).

usage: status_scp.py PORT AE_TITLE STATUS_HEX [--implicit-only] [--out DIR]

--implicit-only  accept storage SOP classes in implicit VR little endian
                 only, like a destination that refuses the stored syntax
--out DIR        write each received data set to DIR/<SOPInstanceUID>.dcm,
                 with the transfer syntax it arrived in
"""
import argparse
import os

from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification
from pydicom.uid import ImplicitVRLittleEndian


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("ae_title")
    ap.add_argument("status", type=lambda s: int(s, 16))
    ap.add_argument("--implicit-only", action="store_true")
    ap.add_argument("--out")
    args = ap.parse_args()
    ae = AE(ae_title=args.ae_title)
    if args.implicit_only:
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, ImplicitVRLittleEndian)
    else:
        ae.supported_contexts = AllStoragePresentationContexts
    ae.add_supported_context(Verification)

    def on_store(event):
        uid = event.request.AffectedSOPInstanceUID
        ts = event.context.transfer_syntax
        if args.out:
            # Decoding here is the check that what arrived is readable in
            # the syntax it was negotiated in.
            ds = event.dataset
            ds.file_meta = event.file_meta
            ds.save_as(os.path.join(args.out, f"{uid}.dcm"), enforce_file_format=True)
            print(f"decoded {uid} PatientID={ds.PatientID} in {ts}", flush=True)
        print(f"C-STORE {uid} in {ts} -> {args.status:04X}", flush=True)
        return args.status

    ae.start_server(("127.0.0.1", args.port), block=True, evt_handlers=[(evt.EVT_C_STORE, on_store)])


if __name__ == "__main__":
    main()

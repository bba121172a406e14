"""A storage SCP that answers every C-STORE with one fixed status: the test
peer for rtnode's outbound queue (a destination that refuses with A9xx or
Cxxx must give a dead letter at once; A7xx must be retried).

usage: status_scp.py PORT AE_TITLE STATUS_HEX
"""
import sys

from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification


def main() -> None:
    port, ae_title, status = int(sys.argv[1]), sys.argv[2], int(sys.argv[3], 16)
    ae = AE(ae_title=ae_title)
    ae.supported_contexts = AllStoragePresentationContexts
    ae.add_supported_context(Verification)

    def on_store(event):
        print(f"C-STORE {event.request.AffectedSOPInstanceUID} -> {status:04X}", flush=True)
        return status

    ae.start_server(("127.0.0.1", port), block=True, evt_handlers=[(evt.EVT_C_STORE, on_store)])


if __name__ == "__main__":
    main()

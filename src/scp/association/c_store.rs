//! The C-STORE path of a session: checking a request before a byte is
//! written (class, UIDs, disk), handing the data set to the writer thread,
//! and answering once the commit thread says the instance is durable, or
//! with the failure status it gave.

use super::*;

impl Session {
    /// Checks the request before a byte is written; on refusal the data set
    /// is still read (and dropped) so the association stays usable.
    pub(super) fn start_store(&self, ctx: &AcceptedContext, command: &Command) -> Sink {
        let sop_class = command.affected_sop_class_uid.clone().unwrap_or_default();
        let sop_instance = command
            .affected_sop_instance_uid
            .clone()
            .unwrap_or_default();
        if !uids::is_storage_sop_class(&ctx.abstract_syntax) {
            return Sink::Discarding(StoreFailure::new(
                DimseStatus::SOP_CLASS_NOT_SUPPORTED,
                "presentation context is not for storage",
            ));
        }
        if sop_class != ctx.abstract_syntax {
            return Sink::Discarding(StoreFailure::new(
                DimseStatus::DATA_SET_DOES_NOT_MATCH,
                format!(
                    "SOP class {sop_class} sent on a context for {}",
                    ctx.abstract_syntax
                ),
            ));
        }
        match check_uid(&sop_instance) {
            Ok(UidCheck::Valid) => {}
            Ok(UidCheck::LeadingZeroComponent) => {
                warn!(calling_ae = %self.calling_ae, uid = %sop_instance, "SOPInstanceUID has a component with a leading zero; stored anyway")
            }
            Err(e) => {
                return Sink::Discarding(StoreFailure::new(
                    DimseStatus::INVALID_UID,
                    format!("SOPInstanceUID: {e}"),
                ))
            }
        }
        if let Err(f) = self.node.store.check_free_space() {
            return Sink::Discarding(f);
        }
        let (tx, mut rx) = mpsc::channel::<WriterMsg>(16);
        let (outcome_tx, outcome) = oneshot::channel();
        let (who_tx, who) = oneshot::channel();
        let store = self.node.store.clone();
        let ts = ctx.transfer_syntax.clone();
        let calling_ae = self.calling_ae.clone();
        let handle = tokio::task::spawn_blocking(move || {
            let mut pending = match store.begin(&sop_class, &sop_instance, &ts, &calling_ae) {
                Ok(p) => p,
                Err(f) => {
                    // Drain so the reader never blocks on a full channel.
                    while let Some(WriterMsg::Chunk(_)) = rx.blocking_recv() {}
                    let _ = outcome_tx.send(Err(f));
                    return;
                }
            };
            loop {
                match rx.blocking_recv() {
                    Some(WriterMsg::Chunk(c)) => pending.write(&c),
                    Some(WriterMsg::Done) => {
                        match pending.finish() {
                            Ok(prepared) => {
                                let _ = who_tx.send((
                                    prepared.record.patient.id.clone(),
                                    prepared.record.study_instance_uid.clone(),
                                ));
                                // The commit thread answers the association.
                                store.commit_then_reply(prepared, outcome_tx);
                            }
                            Err(f) => {
                                let _ = outcome_tx.send(Err(f));
                            }
                        }
                        return;
                    }
                    None => {
                        // The association is gone; nobody waits for an answer.
                        pending.abandon();
                        return;
                    }
                }
            }
        });
        Sink::Writing {
            tx,
            handle,
            outcome,
            who,
        }
    }

    pub(super) async fn complete(
        &mut self,
        conn: &mut Conn,
        incoming: Incoming,
    ) -> Result<(), Abort> {
        let Incoming {
            context_id,
            command,
            sink,
            bytes,
        } = incoming;
        let mut who = (String::new(), String::new());
        let result = match sink {
            Sink::Discarding(f) => Err(f),
            Sink::Writing {
                tx,
                handle,
                outcome,
                who: mut who_rx,
            } => {
                let _ = tx.send(WriterMsg::Done).await;
                drop(tx);
                // The writer hands the instance to the commit thread and
                // ends; the answer comes from whichever decides it.
                let result = match outcome.await {
                    Ok(r) => r,
                    Err(_) => Err(StoreFailure::new(
                        DimseStatus::PROCESSING_FAILURE,
                        match handle.await {
                            Err(e) => format!("writer failed: {e}"),
                            Ok(()) => "writer ended without an answer".to_string(),
                        },
                    )),
                };
                if let Ok(w) = who_rx.try_recv() {
                    who = w;
                }
                result
            }
        };
        let sop_instance = command.affected_sop_instance_uid.as_deref().unwrap_or("");
        self.node.audit.record(crate::audit::Event {
            event: "DICOMInstancesTransferred",
            action: if result.is_ok() {
                "received"
            } else {
                "refused"
            },
            calling_ae: self.calling_ae.clone(),
            called_ae: self.node.ae_title.clone(),
            peer: self.record.peer_address.clone(),
            patient_id: who.0,
            study_instance_uid: who.1,
            sop_instance_uid: sop_instance.escape_debug().to_string(),
            sop_class_uid: command.affected_sop_class_uid.clone().unwrap_or_default(),
            outcome: match &result {
                Ok(()) => "0000".into(),
                Err(f) => f.to_string(),
            },
            ..Default::default()
        });
        let rsp = match &result {
            Ok(()) => {
                self.record.instances += 1;
                self.record.bytes += bytes;
                Stats::add(&self.node.stats.instances_stored, 1);
                Stats::add(&self.node.stats.bytes_stored, bytes);
                debug!(calling_ae = %self.calling_ae, sop_instance_uid = %sop_instance, bytes, "stored");
                dimse::c_store_rsp(
                    command.message_id.unwrap_or(0),
                    command.affected_sop_class_uid.as_deref(),
                    command.affected_sop_instance_uid.as_deref(),
                    DimseStatus::SUCCESS,
                    None,
                )
            }
            Err(f) => {
                self.record.failures += 1;
                Stats::add(&self.node.stats.store_failures, 1);
                self.node.stats.failure(&format!("store_{:04x}", f.status));
                warn!(
                    calling_ae = %self.calling_ae,
                    sop_instance_uid = %sop_instance.escape_debug(),
                    status = format!("{:04X}", f.status),
                    reason = %f.comment,
                    "C-STORE refused"
                );
                failure_response(&command, f)
            }
        };
        self.respond(conn, context_id, &rsp).await
    }
}

pub(super) fn failure_response(command: &Command, f: &StoreFailure) -> Command {
    let mut rsp = dimse::c_store_rsp(
        command.message_id.unwrap_or(0),
        command.affected_sop_class_uid.as_deref(),
        command.affected_sop_instance_uid.as_deref(),
        f.status,
        Some(&f.comment),
    );
    rsp.command_field = command.command_field | 0x8000;
    rsp
}

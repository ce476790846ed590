"""Lock renewal on a queue with LockDuration PT5S.

renew_message_lock twice moves locked_until_utc forward each time (and about 5 s past the
renewal), so a complete 8 s after the receive, well past the original lock, succeeds. An
AutoLockRenewer keeps a second message locked for 8 s: no other receiver gets it and the late
complete succeeds. Renewing a completed message fails: the SDK itself refuses with
MessageAlreadySettled, and with that local check hidden the broker must answer
MessageLockLostError."""

import datetime
import time

from azure.servicebus import AutoLockRenewer, ServiceBusMessage
from azure.servicebus.exceptions import MessageAlreadySettled, MessageLockLostError

from sbcommon import ScenarioFailure, check, client, expect_eq, expect_no_message, log, receive_exactly, run, scenario_args

LOCK_SECONDS = 5
HOLD_SECONDS = 8


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def seconds_ahead(moment):
    return (moment - utc_now()).total_seconds()


def check_lock_ahead(moment, what):
    ahead = seconds_ahead(moment)
    check(LOCK_SECONDS - 2 <= ahead <= LOCK_SECONDS + 1.5,
          f"{what}: expected about {LOCK_SECONDS}s ahead, got {ahead:.2f}s")


def manual_renewal(sb, queue):
    with sb.get_queue_sender(queue) as sender:
        sender.send_messages(ServiceBusMessage("renew me", message_id="renew-1"))
    with sb.get_queue_receiver(queue) as receiver:
        received_at = time.monotonic()
        [message] = receive_exactly(receiver, 1)
        original = message.locked_until_utc
        check(original is not None, "locked_until_utc is not set")
        check_lock_ahead(original, "initial lock")

        previous = original
        for round_number in (1, 2):
            time.sleep(3)
            renewed = receiver.renew_message_lock(message)
            log(f"renewal {round_number}: locked_until {previous.isoformat()} -> {renewed.isoformat()}")
            check(renewed > previous,
                  f"renewal {round_number}: expected locked_until after {previous.isoformat()}, got {renewed.isoformat()}")
            check_lock_ahead(renewed, f"renewal {round_number}")
            expect_eq(message.locked_until_utc, renewed, f"renewal {round_number}: message.locked_until_utc")
            previous = renewed

        time.sleep(max(0.0, HOLD_SECONDS - (time.monotonic() - received_at)))
        held = time.monotonic() - received_at
        check(held > LOCK_SECONDS, f"held only {held:.1f}s, not past the lock duration")
        receiver.complete_message(message)
        log(f"completed {held:.1f}s after receipt, past the {LOCK_SECONDS}s lock")
        expect_no_message(receiver, max_wait_time=1)

        try:
            receiver.renew_message_lock(message)
        except MessageAlreadySettled as error:
            log(f"SDK refuses to renew a settled message: {error}")
        else:
            raise ScenarioFailure("renewing a completed message succeeded; expected MessageAlreadySettled from the SDK")
        # Hide the SDK's local check so the renewal reaches the broker.
        message._settled = False
        try:
            receiver.renew_message_lock(message)
        except MessageLockLostError as error:
            log(f"broker refuses to renew a completed message: MessageLockLostError: {error}")
        else:
            raise ScenarioFailure("the broker renewed the lock of a completed message; expected MessageLockLostError")


def auto_renewal(sb, queue):
    failures = []
    with sb.get_queue_sender(queue) as sender:
        sender.send_messages(ServiceBusMessage("keep me", message_id="auto-1"))
    renewer = AutoLockRenewer(max_lock_renewal_duration=60,
                              on_lock_renew_failure=lambda renewable, error: failures.append(repr(error)))
    try:
        with sb.get_queue_receiver(queue) as receiver, sb.get_queue_receiver(queue) as other:
            received_at = time.monotonic()
            [message] = receive_exactly(receiver, 1)
            expect_eq(message.message_id, "auto-1", "auto-renewed message_id")
            original = message.locked_until_utc
            renewer.register(receiver, message)
            # Meanwhile a second receiver must not get the message.
            while time.monotonic() - received_at < HOLD_SECONDS:
                expect_no_message(other, max_wait_time=1)
            expect_eq(failures, [], "AutoLockRenewer failures")
            check(message.locked_until_utc > original,
                  f"AutoLockRenewer did not move locked_until_utc past {original.isoformat()}")
            check(seconds_ahead(message.locked_until_utc) > 0,
                  f"lock ran out: locked_until_utc {message.locked_until_utc.isoformat()} is in the past")
            receiver.complete_message(message)
            log(f"auto-renewed message completed {time.monotonic() - received_at:.1f}s after receipt")
            expect_no_message(other, max_wait_time=1)
            expect_eq(message.delivery_count, 0, "delivery_count of the auto-renewed message")
    finally:
        renewer.close()
    expect_eq(failures, [], "AutoLockRenewer failures")


def main():
    conn, queue, _ = scenario_args()
    with client(conn, retry_total=0) as sb:
        manual_renewal(sb, queue)
        auto_renewal(sb, queue)


if __name__ == "__main__":
    run(main)

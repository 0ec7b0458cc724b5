"""Webhook secrets at rest: sealed to the department's own key, and still opened
after the department rotated its encryption key (with the retired key)."""

from __future__ import annotations

import pytest

from govshare.broker import webhooks
from govshare.crypto.keys import KEM_MLKEM768_X25519, HpkePrivateKey
from integration.world import World, make_services

pytestmark = pytest.mark.integration

SECRET = "whsec_" + "s3cret" * 6


def test_a_webhook_added_before_a_rotation_still_unseals(world: World) -> None:
    svc = make_services(world, "TAX")
    try:
        sealed = webhooks._seal(svc, 7, SECRET)
        assert SECRET.encode() not in sealed
        assert webhooks._open(svc, 7, sealed) == SECRET
        assert webhooks._open(svc, 8, sealed) is None  # bound to its webhook id
        before = svc.hpke
        svc.hpke = HpkePrivateKey.generate(KEM_MLKEM768_X25519)  # as after `dept rotate --kem`
        svc.retired_hpke = ()
        assert webhooks._open(svc, 7, sealed) is None
        svc.retired_hpke = (before,)
        assert webhooks._open(svc, 7, sealed) == SECRET
        # and a secret sealed now uses the new key's X25519 half
        fresh = webhooks._seal(svc, 9, SECRET)
        svc.retired_hpke = ()
        assert webhooks._open(svc, 9, fresh) == SECRET
    finally:
        svc.close()
        svc.store.close()
        svc.db.close()

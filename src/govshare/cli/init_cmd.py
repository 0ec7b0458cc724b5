"""``govshare init CODE --name NAME``: create a department profile and its keys."""

from __future__ import annotations

import click

from govshare.cli.main import Ctx, common_options, pass_ctx
from govshare.crypto import resolve_password
from govshare.crypto.errors import PasswordUnavailable
from govshare.crypto.keystore import DEFAULT_SCRYPT_N, ENV_ADMIN_PASSWORD
from govshare.profile import create_profile, list_codes, normalise_code

FIRST_BROKER_PORT = 8701


#: The HPKE KEMs (govshare.crypto.keys.KEMS; not imported: a test keeps them equal).
KEMS = ("x25519", "mlkem768-x25519")


@click.command("init")
@click.argument("code")
@click.option("--name", required=True, help="The department's full name.")
@click.option(
    "--endpoint",
    default=None,
    help="URL other departments reach this department's broker at "
    f"(default http://127.0.0.1:{FIRST_BROKER_PORT}+n on one machine).",
)
@click.option(
    "--password-file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Read the broker key password from this file (else $GOVSHARE_PASSWORD or a prompt).",
)
@click.option(
    "--kem",
    type=click.Choice(KEMS),
    default="x25519",
    show_default=True,
    help="The HPKE key's KEM: x25519, or mlkem768-x25519 (hybrid post-quantum: "
    "capsules for this department stay closed unless ML-KEM-768 and X25519 both fall).",
)
@click.option(
    "--scrypt-n",
    type=int,
    default=DEFAULT_SCRYPT_N,
    hidden=True,
    help="scrypt cost of the keystores (lower only for tests).",
)
@common_options
@pass_ctx
def init(
    ctx: Ctx,
    code: str,
    name: str,
    endpoint: str | None,
    password_file: str | None,
    kem: str,
    scrypt_n: int,
) -> None:
    """Create the profile of department CODE: broker and administrator keys
    (Ethereum v3 keystores), an HPKE encryption key pair, and its endpoint.

    The broker key and the HPKE key share the broker password; the administrator
    key has its own ($GOVSHARE_ADMIN_PASSWORD, else a prompt, else the same one).
    """
    home = ctx.home
    code = normalise_code(code)  # refuse a bad code before asking for passwords
    if endpoint is None:
        endpoint = f"http://127.0.0.1:{FIRST_BROKER_PORT + len(list_codes(home))}"
    settings = ctx.settings
    passwords = settings.passwords()
    broker_pw = resolve_password(
        None,
        confirm=True,
        password_file=password_file,
        configured=passwords.broker,
        configured_file=passwords.broker_file,
        prompt=f"New password for {code}'s broker key: ",
        option="--password-file",
    )
    admin_pw = passwords.admin
    if not admin_pw:
        try:
            admin_pw = resolve_password(
                None,
                confirm=True,
                configured_file=passwords.admin_file,
                prompt=f"New password for {code}'s administrator key: ",
                env=ENV_ADMIN_PASSWORD,
            )
        except PasswordUnavailable:  # no terminal: scripts use one password for both
            admin_pw = broker_pw
    prof = create_profile(
        home,
        code,
        name,
        endpoint=endpoint,
        broker_password=broker_pw,
        admin_password=admin_pw,
        scrypt_n=scrypt_n,
        kem=kem,
    )
    # The consortium subject key (HMAC of subject ids): shared by all members.
    from govshare.broker.subjects import ensure_subject_key

    _key, source = ensure_subject_key(
        home,
        prof.dir,
        key=settings.secret("subject_key"),
        key_file=settings.subject_key_file,
    )
    subject_note = {
        "env": "from GOVSHARE_SUBJECT_KEY(_FILE)",
        "existing": "kept",
        "generated": "generated: give the same subject.key to every member department",
    }.get(source, source)
    info = {
        **prof.public_info(),
        "profile_dir": str(prof.dir),
        "subject_key": source,
        "kem": kem,
    }
    pq = " (hybrid post-quantum)" if kem != "x25519" else ""
    ctx.emit(
        info,
        f"Department {prof.code} ({prof.name}) created in {prof.dir}\n"
        f"  broker account  {prof.broker_address}\n"
        f"  admin account   {prof.admin_address}\n"
        f"  endpoint        {prof.endpoint}\n"
        f"  encryption key  {kem}{pq}\n"
        f"  subject key     {subject_note}\n"
        "Keep the passwords safe: without them the keys cannot be unlocked.",
    )

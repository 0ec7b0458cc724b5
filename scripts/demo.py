"""`make demo`: a local consortium, from nothing, narrated for a newcomer.

Every step runs the real `govshare` command line against a real local chain
(anvil), in a fresh demo home (`.demo/` in the repository, git-ignored), and
prints the command before its output so you can re-type any of it.

What it shows today (the ledger): three departments create their keys, deploy
the consortium's contracts on a local chain, declare what records they hold,
and vote a fourth department in — which only joins once the threshold of
approvals from distinct departments is met.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from govshare.chain.devnode import DEFAULT_PORT, free_port

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / ".demo"
GOVSHARE = Path(sys.executable).parent / "govshare"
BOLD, DIM, GREEN, RED, RESET = "\033[1m", "\033[2m", "\033[32m", "\033[31m", "\033[0m"
if not sys.stdout.isatty():
    BOLD = DIM = GREEN = RED = RESET = ""

ENV = {
    **os.environ,
    "GOVSHARE_HOME": str(HOME),
    # Demo passwords. Real departments type theirs at a prompt, or keep them in
    # a file named by GOVSHARE_PASSWORD_FILE; the admin key has its own.
    "GOVSHARE_PASSWORD": "demo-broker-password",
    "GOVSHARE_ADMIN_PASSWORD": "demo-admin-password",
}


def say(text: str) -> None:
    print(f"\n{BOLD}{textwrap.fill(textwrap.dedent(text).strip(), 88)}{RESET}")


def run(*args: str, expect_ok: bool = True) -> subprocess.CompletedProcess[str]:
    print(f"{DIM}${RESET} govshare {shlex.join(args)}")
    proc = subprocess.run([str(GOVSHARE), *args], env=ENV, text=True, capture_output=True)
    out = (proc.stdout + proc.stderr).rstrip()
    if out:
        print(textwrap.indent(out, "  "))
    if expect_ok and proc.returncode != 0:
        print(f"{RED}The demo stopped: that command failed (exit {proc.returncode}).{RESET}")
        stop_chain()
        sys.exit(1)
    if not expect_ok and proc.returncode == 0:
        print(f"{RED}The demo stopped: that command should have been refused.{RESET}")
        stop_chain()
        sys.exit(1)
    return proc


def stop_chain() -> None:
    subprocess.run([str(GOVSHARE), "dev", "chain", "stop"], env=ENV, capture_output=True)


def main() -> int:
    if HOME.exists():
        stop_chain()
        shutil.rmtree(HOME)

    say("""govshare demo. Three government departments — a tax bureau (TAX), a market
        regulator (MARKET) and a court (COURT) — set up a consortium ledger on this machine.""")

    say(
        "1. Each department creates its profile: a broker key (its service signs with it), "
        "an administrator key (people consent and vote with it) and an encryption key pair."
    )
    run("init", "TAX", "--name", "Tax Bureau")
    run("init", "MARKET", "--name", "Market Regulator")
    run("init", "COURT", "--name", "People's Court")

    say(
        "2. Start the local chain. Its ledger is kept under the demo home, so a restart "
        "keeps every department and vote."
    )
    port = DEFAULT_PORT
    try:
        import socket

        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            port = free_port()  # 8545 is taken by something else: use a free port
    except OSError:
        pass
    run("dev", "chain", "start", "--port", str(port))

    say(
        "3. Deploy the three contracts with the founders registered. Changes to the "
        "membership need the approval of 2 distinct departments."
    )
    run("consortium", "deploy", "--founders", "TAX,MARKET,COURT", "--threshold", "2")
    run("dept", "list")

    say(
        "4. Each department declares, in its catalog, what records it holds, so that "
        "others know what they may ask for. Declaring is an administrator's act."
    )
    run(
        "catalog",
        "declare",
        "tax-clearance",
        "--description",
        "Tax clearance certificate of an enterprise",
        "--as",
        "TAX",
    )
    run(
        "catalog",
        "declare",
        "business-licence",
        "--description",
        "Business licence and its status",
        "--as",
        "MARKET",
    )
    run("catalog", "list")

    say(
        "5. Customs asks to join. It creates its own profile and hands its public entry "
        "to TAX, whose administrator proposes it. That is one approval of two."
    )
    run("init", "CUSTOMS", "--name", "Customs Office")
    run("dept", "propose", "add", "CUSTOMS", "--as", "TAX", "-y")
    run("dept", "proposals")

    say(
        "Customs is not a member yet, so it cannot vote for itself, and TAX cannot "
        "approve twice: the contract refuses both."
    )
    run("dept", "approve", "1", "--as", "CUSTOMS", "-y", expect_ok=False)
    run("dept", "approve", "1", "--as", "TAX", "-y", expect_ok=False)
    run("dept", "show", "CUSTOMS", expect_ok=False)

    say("MARKET's administrator approves: the threshold is met and Customs joins.")
    run("dept", "approve", "1", "--as", "MARKET", "-y")
    run("dept", "list")

    stop_chain()
    say(f"{GREEN}Done.{RESET}{BOLD} The ledger is saved in .demo/; to look around:")
    print("  export GOVSHARE_HOME=$PWD/.demo")
    print("  .venv/bin/govshare dev chain start")
    print("  .venv/bin/govshare dept list --json")
    return 0


if __name__ == "__main__":
    sys.exit(main())

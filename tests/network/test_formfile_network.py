"""A Formfile's NETWORK settings: recorded on the pack and on the instances shipped from it,
and reported as not applied by the local driver (its instances get loopback ports only)."""

from __future__ import annotations

import grpc
from tests.support.auth import Md
from tests.support.network import ECHO_APP
from tests.support.workloads import succeed

FORMFILE = """\
NAME isolated
NETWORK join_formnet:false external_networks:lab,edge
ENTRYPOINT ["python3", "app.py"]
EXPOSE 8080
"""


async def test_network_settings_are_recorded_on_pack_and_instance_and_reported_not_applied(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    built = await succeed(
        channel, as_account, "pack.build", formfile=FORMFILE, context_files={"app.py": ECHO_APP}
    )
    instance = await succeed(
        channel, as_account, "pack.ship", build_id=built["build_id"], instance_name="isolated"
    )
    status = await succeed(channel, as_account, "vm.status", id="isolated")

    assert "NETWORK join_formnet:false external_networks:lab,edge" in built["not_applied"]
    assert "joins no networks" in built["note"]
    recorded = {"join_formnet": False, "external_networks": ["lab", "edge"]}
    for seen in (instance, status):
        assert seen["network"] == recorded and seen["not_applied"] == ["network"]
    await succeed(channel, as_account, "vm.delete", id="isolated", force=True)


async def test_default_network_settings_are_not_reported(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    built = await succeed(
        channel,
        as_account,
        "pack.build",
        formfile=FORMFILE.replace("NETWORK join_formnet:false external_networks:lab,edge\n", ""),
        context_files={"app.py": ECHO_APP},
    )
    instance = await succeed(
        channel, as_account, "pack.ship", build_id=built["build_id"], instance_name="plain"
    )

    assert built["not_applied"] == [] and "network" not in instance
    assert "not_applied" not in instance
    await succeed(channel, as_account, "vm.delete", id="plain", force=True)

"""route: the connected route of an address, static routes, and bad requests."""


def test_connected_and_static_routes(pair):
    a, _ = pair
    table = a.run("route", "show").stdout.splitlines()
    assert table[:3] == ["Routing tables", "", "Internet:"]
    assert any(line.startswith("10.0.0.0/24") and " UC " in line and line.endswith("shmif0") for line in table)
    done = a.run("route", "add", "default", "10.0.0.2")
    assert done.returncode == 0
    assert any(line.startswith("default") and "10.0.0.2" in line and " UGS " in line
               for line in a.run("route", "show").stdout.splitlines())
    assert a.run("route", "delete", "default").returncode == 0
    assert "default" not in a.run("route", "show").stdout


def test_bad_routes(pair):
    a, _ = pair
    before = a.run("route", "show").stdout
    unreachable = a.run("route", "add", "192.168.0.0/16", "172.16.0.1")
    assert unreachable.returncode == 1 and "not on a connected network" in unreachable.stderr
    missing = a.run("route", "delete", "192.168.0.0/16")
    assert missing.returncode == 1 and "no route" in missing.stderr
    short = a.run("route", "add", "default")
    assert short.returncode == 1 and "DESTINATION GATEWAY" in short.stderr
    assert a.run("route", "show").stdout == before


def test_no_route_to_other_network(pair):
    a, _ = pair
    done = a.run("ping", "-c", "1", "-w", "1", "192.168.1.1")
    assert done.returncode == 2
    assert "ping: sendto: Network is unreachable" in done.stdout

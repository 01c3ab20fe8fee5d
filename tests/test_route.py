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
    not_an_address = a.run("route", "add", "default", "notanip")
    assert not_an_address.returncode == 1 and "'notanip' is not an IPv4 address" in not_an_address.stderr
    assert a.run("route", "show").stdout == before


def test_host_routes_and_route_get(nodes, bus):
    a, r = nodes("a"), nodes("r")
    a.attach(bus, "10.0.0.1/24")
    r.attach(bus, "10.0.0.254/24")
    done = a.run("route", "add", "-host", "10.9.9.9", "10.0.0.254")
    assert done.stdout == "add host 10.9.9.9: gateway 10.0.0.254\n"
    done = a.run("route", "add", "-net", "192.168.5.0/24", "10.0.0.254")
    assert done.stdout == "add net 192.168.5.0/24: gateway 10.0.0.254\n"
    got = a.run("route", "get", "192.168.5.7").stdout
    assert "destination: 192.168.5.0/24" in got and "gateway: 10.0.0.254" in got and "interface: shmif0" in got
    assert "10.9.9.9/32" in a.run("route", "show").stdout
    assert a.run("route", "get", "172.16.0.1").returncode == 1
    assert a.is_alive()


def test_no_route_to_other_network(pair):
    a, _ = pair
    done = a.run("ping", "-c", "1", "-w", "1", "192.168.1.1")
    assert done.returncode == 2
    assert "ping: sendto: Network is unreachable" in done.stdout


def test_net_words_and_netmask_as_netbsd_reads_them(pair):
    a, _ = pair
    for words, said in ((["-net", "10.0.2.0", "-netmask", "255.255.255.0"], "add net 10.0.2.0"),
                        (["-net", "10.5.0.0"], "add net 10.5.0.0"), (["-net", "10.6"], "add net 10.6"),
                        (["-host", "10.0.4.7"], "add host 10.0.4.7")):
        done = a.run("route", "add", *words, "10.0.0.2")
        assert done.stdout == f"{said}: gateway 10.0.0.2\n", done.stderr
    table = a.run("route", "show").stdout
    for destination in ("10.0.2.0/24", "10.5.0.0/16", "10.6.0.0/16", "10.0.4.7/32"):
        assert f"\n{destination} " in table
    for words in (["-net", "10.0.2.0"], ["-netmask", "255.255.0.0", "-net", "10.5.0.0"], ["-net", "10.6.0.0/16"],
                  ["-host", "10.0.4.7"]):
        assert a.run("route", "delete", *words).returncode == 0
    assert a.run("route", "show").stdout.splitlines()[4:] == [  # the connected route alone
        "10.0.0.0/24        link#shmif0        UC          -        0      - shmif0"]


def test_netstat_rn_lists_routes_in_address_order_and_neighbours(pair):
    a, b = pair
    for destination in ("default", "172.16.0.0/12", "10.0.0.77"):
        assert a.run("route", "add", destination, "10.0.0.2").returncode == 0
    assert a.run("ping", "-c", "1", "10.0.0.2").returncode == 0
    mac = b.ifconfig("shmif0").split("address: ")[1].split()[0]
    lines = a.run("netstat", "-rn").stdout.splitlines()
    assert lines[:4] == ["Routing tables", "", "Internet:",
                         "Destination        Gateway            Flags    Refs      Use    Mtu Interface"]
    rows = [line.split() for line in lines[4:]]
    assert [row[:3] + row[-1:] for row in rows] == [
        ["default", "10.0.0.2", "UGS", "shmif0"],
        ["10.0.0/24", "link#shmif0", "UC", "shmif0"],
        ["10.0.0.2", mac, "UHL", "shmif0"],
        ["10.0.0.77", "10.0.0.2", "UGHS", "shmif0"],
        ["172.16/12", "10.0.0.2", "UGS", "shmif0"]]
    assert a.run("netstat", "-r").stdout == "\n".join(lines) + "\n"

# SPDX-License-Identifier: GPL-2.0-or-later
"""Accounting for a local cluster (tools/localcluster.py, accounting=True):
a private MariaDB server (its own datadir, socket and 127.0.0.1 port under
the cluster dir) and slurmdbd, both children of the cluster, started before
slurmctld and stopped by PID after it. slurm.conf then stores accounting
through slurmdbd with the slices' TRES (gres/vslice, gres/vborrow, gres/gpu);
the cluster, two accounts ("flexacct"; "flexsr", for one job of the rollup
test alone) and root's associations in them are registered with sacctmgr
before slurmctld starts."""

import os
import secrets
import shutil

from localcluster_files import free_ports

ACCOUNT = "flexacct"  # jobs of the tests: sbatch -A flexacct
ROLLUP_ACCOUNT = "flexsr"  # test_accounting's rollup test: one job, nothing else


class Accounting:
    """LocalCluster's accounting (a mixin: it reads the cluster's settings)."""

    def accounting_conf(self):
        """slurm.conf lines for accounting (accounting_storage/none without it)."""
        if not self.accounting:
            return "AccountingStorageType=accounting_storage/none\n"
        self.db_port, self.dbd_port = free_ports(2)
        self._ports += [self.db_port, self.dbd_port]
        tres = "gres/gpu,gres/vslice" + (",gres/vborrow" if self.lending else "")
        return ("AccountingStorageType=accounting_storage/slurmdbd\n"
                "AccountingStorageHost=localhost\n"
                f"AccountingStoragePort={self.dbd_port}\n"
                # the connections to slurmdbd take munged's socket from here, not from AuthInfo
                f"AccountingStoragePass={self.dir}/munge/munge.socket\n"
                f"AccountingStorageTRES={tres}\n")

    def write_accounting_files(self):
        """slurmdbd.conf (0600, as slurmdbd demands) beside slurm.conf."""
        if not self.accounting:
            return
        for tool in ("mariadbd", "mariadb-install-db", "slurmdbd"):
            if not shutil.which(tool, path=self.env.get("PATH", "") + ":/usr/sbin:/usr/bin"):
                raise FileNotFoundError(f"accounting=True needs {tool} (apt-get install mariadb-server slurmdbd)")
        mysql_plugin = os.path.join(self.system_plugin_dir, "accounting_storage_mysql.so")
        if not os.path.exists(mysql_plugin):
            raise FileNotFoundError(f"accounting=True needs {mysql_plugin} (Slurm configured with libmariadb-dev)")
        d = self.dir
        self._db_pass = secrets.token_hex(12)
        (d / "db").mkdir()
        conf = d / "etc" / "slurmdbd.conf"
        conf.write_text(f"""\
AuthType=auth/munge
AuthInfo=socket={d}/munge/munge.socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={self.dbd_port}
SlurmUser=root
PidFile={d}/run/slurmdbd.pid
LogFile={d}/log/slurmdbd.log
DebugLevel=info
PluginDir={self.system_plugin_dir}
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={self.db_port}
StorageUser=slurm
StoragePass={self._db_pass}
StorageLoc=slurm_acct_db
""")
        os.chmod(conf, 0o600)

    def _mariadb(self, sql, timeout=30):
        return self.run(["mariadb", f"--socket={self.dir}/db/mysqld.sock", "-uroot", "-e", sql], timeout=timeout)

    def start_accounting(self):
        """MariaDB, then slurmdbd, then the cluster, account and association (before slurmctld)."""
        if not self.accounting:
            return
        d = self.dir
        data = d / "db" / "data"
        self.run(["mariadb-install-db", f"--datadir={data}", "--user=root", "--skip-test-db",
                  "--auth-root-authentication-method=socket", "--skip-name-resolve"], timeout=120)
        self._spawn("mariadbd", [
            "mariadbd", "--no-defaults", f"--datadir={data}", "--user=root", f"--socket={d}/db/mysqld.sock",
            f"--port={self.db_port}", "--bind-address=127.0.0.1", f"--pid-file={d}/run/mariadbd.pid",
            f"--log-error={d}/log/mariadbd.log", "--skip-name-resolve", "--skip-log-bin",
            "--innodb-buffer-pool-size=64M", "--innodb-log-file-size=16M", "--innodb-lock-wait-timeout=900",
            "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0"])
        self._wait_for(lambda: self._alive("mariadbd") and self.run(
            ["mariadb-admin", f"--socket={d}/db/mysqld.sock", "-uroot", "ping"], check=False).returncode == 0,
            60, "mariadbd to answer")
        self._mariadb(f"CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{self._db_pass}'; "
                      "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';")
        self._spawn("slurmdbd", ["slurmdbd", "-D"])
        self._wait_for(lambda: self._alive("slurmdbd") and self.run(
            ["sacctmgr", "-n", "-P", "list", "cluster", "format=cluster"], check=False, timeout=10).returncode == 0,
            60, "slurmdbd to answer")
        self.run(["sacctmgr", "-i", "add", "cluster", "flexslurm"])
        self.run(["sacctmgr", "-i", "add", "account", f"{ACCOUNT},{ROLLUP_ACCOUNT}"])
        self.run(["sacctmgr", "-i", "add", "user", "root", f"Account={ACCOUNT},{ROLLUP_ACCOUNT}",
                  f"DefaultAccount={ACCOUNT}"])

    def stop_accounting(self):
        """After slurmctld (which sends its last records on the way out)."""
        self.stop_daemon("slurmdbd", timeout=30)
        self.stop_daemon("mariadbd", timeout=60)

# Creating files outside the working directory: in the course package, the repository, home folders, /tmp.
# lesson: 00_setup
# base: solution
# needs: namespaces
# expect-status: graded
# expect-points: max
import pathlib
import llmc_core

package = pathlib.Path(llmc_core.__file__).parent
folders = [package, package / "snapshots", package / "probes", package.parent, pathlib.Path("/tmp"),
           pathlib.Path("/root"), pathlib.Path("/var/tmp"), pathlib.Path("/dev/shm"), pathlib.Path("/run/lock")]
for folder in folders:
    try:
        (folder / "llmc_redteam_pwned.txt").write_text("pwned\n")
    except OSError:
        pass

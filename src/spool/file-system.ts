/**
 * What the spool's file system is, as far as `--shared` cares. Sharing a
 * spool rests on two things a local file system gives and a network or FUSE
 * one may not: a rename seen at once by every other daemon, and a peer's
 * lease seen as it is now, not as a client cache kept it. Tried on GlusterFS
 * and CephFS through FUSE (issue 16), live daemons were judged dead and their
 * claims taken, and synchronous lookups stalled the event loop for seconds.
 * Until a file system of that kind is tested, `--shared` is refused there.
 *
 * Known by statfs(2)'s f_type (linux/magic.h). Network file systems mounted
 * through FUSE (GlusterFS, ceph-fuse, sshfs, s3fs) all show as fuse; local
 * FUSE file systems (LazyFS) do too, and are refused with them: one daemon
 * alone needs none of this.
 */
import fs from 'node:fs';
import path from 'node:path';

/** f_type values of file systems whose clients may see another client's renames and writes late. */
const REMOTE: ReadonlyMap<number, string> = new Map([
  [0x6969, 'NFS'],
  [0x65735546, 'FUSE'],
  [0x00c36400, 'CephFS'],
  [0xff534d42, 'CIFS'],
  [0xfe534d42, 'SMB2'],
  [0x517b, 'SMB'],
  [0x5346414f, 'AFS'],
  [0x6b414653, 'AFS'],
  [0x01021997, '9P'],
  [0x73757245, 'Coda'],
  [0x564c, 'NCP'],
  [0x7461636f, 'OCFS2'],
  [0x01161970, 'GFS2'],
  [0x0bd00bd0, 'Lustre'],
  [0x13661366, 'OrangeFS'],
]);

/** The name of a file-system type that `--shared` is not tested on, or null for a local one. */
export function remoteFileSystem(type: number): string | null {
  return REMOTE.get(type) ?? null;
}

/**
 * The file system `dir` is on (or would be on, when it is still to be made):
 * statfs of its nearest existing ancestor. Null when the file system does not
 * say (the spool's own checks then say what else is wrong).
 */
export function fileSystemType(dir: string): number | null {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    try {
      return fs.statfsSync(d).type;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Only a name still to be made sends the question up: the parent of a
      // mount point is another file system.
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || path.dirname(d) === d) return null;
    }
  }
}

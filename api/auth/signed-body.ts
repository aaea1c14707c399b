import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Transform } from 'node:stream';
import { errors } from '../../shared/errors/app-error.js';

declare module 'express-serve-static-core' {
  interface Request {
    /**
     * A signed request whose body a route streams itself (an upload): the route reads `stream`
     * instead of the request, and calls `verify()` once it has read it all, before it commits
     * anything. Absent for every other request.
     */
    signedBody?: SignedBody;
  }
}

/**
 * The body of a signed request, hashed (SHA-256) on its way to the route that consumes it, so that
 * an upload is neither buffered nor read twice: the route writes it to its temporary file while the
 * hash is computed, and the signature (HMAC, then the nonce) is checked only when the last byte has
 * gone through. Until `verify()` succeeds the request's identity is the key's, unproven: the route
 * must not act on it beyond reading the body.
 */
export class SignedBody {
  /** The request's bytes, unchanged, after the hasher. */
  readonly stream: Transform;
  private readonly hash = createHash('sha256');
  private digest: string | undefined;
  private verified: Promise<void> | undefined;

  constructor(
    private readonly req: IncomingMessage,
    /** Checks the signature over the body's hash and adopts the identity; rejects with a 401 otherwise. */
    private readonly finish: (bodySha256: string) => Promise<void>,
  ) {
    this.stream = new Transform({
      transform: (chunk: Buffer, _encoding, done) => {
        this.hash.update(chunk);
        done(null, chunk);
      },
      // Runs once the request's last byte went through: only then is the digest the body's.
      flush: (done) => {
        this.digest = this.hash.digest('hex');
        done();
      },
    });
    req.pipe(this.stream);
    // pipe() forwards neither errors nor an aborted upload: the reader must fail rather than wait.
    req.once('error', (err) => this.stream.destroy(err));
    req.once('close', () => {
      if (!req.complete) this.stream.destroy(new Error('the request was aborted'));
    });
  }

  /** Whether the whole body went through the hasher. */
  get complete(): boolean {
    return this.digest !== undefined;
  }

  /**
   * The signature check, once the route has read the body to its end. A body that was not read to
   * its end cannot be checked, and is refused like a wrong signature.
   */
  verify(): Promise<void> {
    if (this.digest === undefined) {
      return Promise.reject(errors.unauthorized('The signed body was not read to its end, so its signature could not be checked.', 'invalid_signature'));
    }
    this.verified ??= this.finish(this.digest);
    return this.verified;
  }

  /** Stops hashing: the route refuses the request without reading the rest of its body. */
  discard(): void {
    this.req.unpipe(this.stream);
    this.stream.destroy();
  }
}

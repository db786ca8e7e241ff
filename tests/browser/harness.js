// Loads the verifier as the console does (an ES module from its static folder,
// under the console's Content-Security-Policy) and hands it to the tests.
import * as verify from "/static/console/verify.js";

window.verify = verify;
document.documentElement.dataset.ready = "yes";

// A module that fails while loading.
'use strict';

throw new Error('broken at load');

import { LOG_FORMATS, LOG_LEVELS } from '../../util/logger.ts';
import { settingsArea } from '../settings.ts';

/** Logging, shared by every program (the exporter, virtctl, virt-qemud). */
export const LOG = settingsArea('log', {
  level: { doc: `Log level: ${LOG_LEVELS.join(', ')}.`, format: [...LOG_LEVELS], default: 'info' },
  format: { doc: `Log format: ${LOG_FORMATS.join(', ')}.`, format: [...LOG_FORMATS], default: 'logfmt' },
});
